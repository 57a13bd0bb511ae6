"""The earlier PyTorch project's scores: the numbers this project reproduces and beats.

`PUBLISHED`: the results table in that project's report (percent), per split:
triplet accuracy, pair ("binary") accuracy at cosine similarity > 0.2, and
its "mean few-shot accuracy" (a pair test that answering "different" beats).

`REEVALUATED`: that project's own trained 150-epoch models evaluated with this
project's protocol (`keras_siamese.evaluation.protocol`) on the real CIFAR-100 test
set, cosine similarity, fractions in [0, 1]. `oneshot_*` is N-way one-shot
over all unseen classes; `fewshot_reference` is the pooled reference few-shot
pair test and `always_different` its trivial baseline.
"""

from __future__ import annotations

# Budget of one reference run: 150 epochs of 50,000 random triplets, three images each.
REFERENCE_TRIPLETS = 150 * 50_000
REFERENCE_IMAGES = 3 * REFERENCE_TRIPLETS

PUBLISHED = {
    "10_90": {"triplet": 86.90, "binary": 78.82, "fewshot": 45.32},
    "50_50": {"triplet": 86.79, "binary": 78.26, "fewshot": 76.77},
    "90_10": {"triplet": 88.34, "binary": 80.95, "fewshot": 83.06},
    "100_0": {"triplet": 89.09, "binary": 82.41, "fewshot": None},
}

REEVALUATED = {
    "10_90": {
        "triplet": 0.8611,
        "pair_fixed": 0.79,
        "pair_auc": 0.8819,
        "fewshot_reference": 0.4842,
        "always_different": 0.9889,
        "oneshot_first": 0.0299,
        "oneshot_random": 0.031,
        "5way_1shot": 0.3117,
        "5way_5shot": 0.3988,
        "recall_at_1": 0.0537,
    },
    "20_80": {
        "triplet": 0.8539,
        "pair_fixed": 0.7722,
        "pair_auc": 0.8551,
        "fewshot_reference": 0.6366,
        "always_different": 0.9875,
        "oneshot_first": 0.049,
        "oneshot_random": 0.0494,
        "5way_1shot": 0.3751,
        "5way_5shot": 0.4824,
        "recall_at_1": 0.0811,
    },
    "30_70": {
        "triplet": 0.8607,
        "pair_fixed": 0.7952,
        "pair_auc": 0.8792,
        "fewshot_reference": 0.6732,
        "always_different": 0.9857,
        "oneshot_first": 0.0631,
        "oneshot_random": 0.0633,
        "5way_1shot": 0.402,
        "5way_5shot": 0.5116,
        "recall_at_1": 0.1031,
    },
    "40_60": {
        "triplet": 0.8627,
        "pair_fixed": 0.8008,
        "pair_auc": 0.8845,
        "fewshot_reference": 0.6929,
        "always_different": 0.9833,
        "oneshot_first": 0.0975,
        "oneshot_random": 0.0836,
        "5way_1shot": 0.4332,
        "5way_5shot": 0.5529,
        "recall_at_1": 0.1222,
    },
    "50_50": {
        "triplet": 0.8678,
        "pair_fixed": 0.7862,
        "pair_auc": 0.8733,
        "fewshot_reference": 0.757,
        "always_different": 0.98,
        "oneshot_first": 0.1105,
        "oneshot_random": 0.1095,
        "5way_1shot": 0.4709,
        "5way_5shot": 0.5893,
        "recall_at_1": 0.1596,
    },
    "60_40": {
        "triplet": 0.8832,
        "pair_fixed": 0.8114,
        "pair_auc": 0.8949,
        "fewshot_reference": 0.7314,
        "always_different": 0.975,
        "oneshot_first": 0.1553,
        "oneshot_random": 0.1474,
        "5way_1shot": 0.5019,
        "5way_5shot": 0.6226,
        "recall_at_1": 0.2028,
    },
    "70_30": {
        "triplet": 0.8865,
        "pair_fixed": 0.8139,
        "pair_auc": 0.8982,
        "fewshot_reference": 0.7517,
        "always_different": 0.9667,
        "oneshot_first": 0.1825,
        "oneshot_random": 0.1952,
        "5way_1shot": 0.54,
        "5way_5shot": 0.6625,
        "recall_at_1": 0.2827,
    },
    "80_20": {
        "triplet": 0.8779,
        "pair_fixed": 0.8102,
        "pair_auc": 0.8946,
        "fewshot_reference": 0.7596,
        "always_different": 0.95,
        "oneshot_first": 0.1889,
        "oneshot_random": 0.2633,
        "5way_1shot": 0.5414,
        "5way_5shot": 0.6633,
        "recall_at_1": 0.3685,
    },
    "90_10": {
        "triplet": 0.8812,
        "pair_fixed": 0.8102,
        "pair_auc": 0.8925,
        "fewshot_reference": 0.7909,
        "always_different": 0.9,
        "oneshot_first": 0.4121,
        "oneshot_random": 0.4963,
        "5way_1shot": 0.6291,
        "5way_5shot": 0.7378,
        "recall_at_1": 0.607,
    },
    "100_0": {"triplet": 0.8891, "pair_fixed": 0.8174, "pair_auc": 0.9008},
}
