"""The earlier PyTorch project's scores: the numbers this project reproduces and beats.

`PUBLISHED`: the results table in that project's report (percent), per split:
triplet accuracy, pair accuracy at the fixed cosine similarity > 0.2
(`pair_fixed`, its "binary" column), and its "mean few-shot accuracy"
(`fewshot_unbalanced`: an unbalanced pair test that answering "different" beats).

`REEVALUATED`: that project's own trained 150-epoch models evaluated with this
project's protocol (`keras_siamese.evaluation.protocol`) on the real CIFAR-100 test
set, cosine similarity, fractions in [0, 1] at full precision (rounded once,
where they are shown). `oneshot_*` is N-way one-shot over all unseen classes;
`fewshot_reference` is the pooled reference few-shot pair test and
`always_different` its trivial baseline.
"""

from __future__ import annotations

# Budget of one reference run: 150 epochs of 50,000 random triplets, three images each.
REFERENCE_TRIPLETS = 150 * 50_000
REFERENCE_IMAGES = 3 * REFERENCE_TRIPLETS

PUBLISHED = {
    "10_90": {"triplet": 86.90, "pair_fixed": 78.82, "fewshot_unbalanced": 45.32},
    "50_50": {"triplet": 86.79, "pair_fixed": 78.26, "fewshot_unbalanced": 76.77},
    "90_10": {"triplet": 88.34, "pair_fixed": 80.95, "fewshot_unbalanced": 83.06},
    "100_0": {"triplet": 89.09, "pair_fixed": 82.41, "fewshot_unbalanced": None},
}

REEVALUATED = {
    "10_90": {
        "triplet": 0.8611,
        "pair_fixed": 0.79,
        "pair_auc": 0.8819468704227025,
        "fewshot_reference": 0.4841838134430727,
        "always_different": 0.9888888888888889,
        "oneshot_first": 0.029854096520763186,
        "oneshot_random": 0.03099438832772166,
        "5way_1shot": 0.3116933333333333,
        "5way_5shot": 0.39881333333333335,
        "recall_at_1": 0.05366666666666667,
    },
    "20_80": {
        "triplet": 0.8539,
        "pair_fixed": 0.7722,
        "pair_auc": 0.8550992324902691,
        "fewshot_reference": 0.636551452020202,
        "always_different": 0.9875,
        "oneshot_first": 0.04898989898989899,
        "oneshot_random": 0.04939393939393939,
        "5way_1shot": 0.37514666666666663,
        "5way_5shot": 0.4823733333333333,
        "recall_at_1": 0.081125,
    },
    "30_70": {
        "triplet": 0.8607,
        "pair_fixed": 0.7952,
        "pair_auc": 0.8792256162713792,
        "fewshot_reference": 0.6731560502989075,
        "always_different": 0.9857142857142858,
        "oneshot_first": 0.06305916305916306,
        "oneshot_random": 0.06327128427128427,
        "5way_1shot": 0.40202666666666664,
        "5way_5shot": 0.5115999999999999,
        "recall_at_1": 0.10314285714285715,
    },
    "40_60": {
        "triplet": 0.8627,
        "pair_fixed": 0.8008,
        "pair_auc": 0.8845305606048798,
        "fewshot_reference": 0.692946127946128,
        "always_different": 0.9833333333333333,
        "oneshot_first": 0.09747474747474748,
        "oneshot_random": 0.08362289562289561,
        "5way_1shot": 0.43316,
        "5way_5shot": 0.5529466666666667,
        "recall_at_1": 0.12216666666666667,
    },
    "50_50": {
        "triplet": 0.8678,
        "pair_fixed": 0.7862,
        "pair_auc": 0.8732755195265223,
        "fewshot_reference": 0.7570343434343434,
        "always_different": 0.98,
        "oneshot_first": 0.11050505050505051,
        "oneshot_random": 0.1095070707070707,
        "5way_1shot": 0.47088,
        "5way_5shot": 0.5892666666666666,
        "recall_at_1": 0.1596,
    },
    "60_40": {
        "triplet": 0.8832,
        "pair_fixed": 0.8114,
        "pair_auc": 0.8948773634318044,
        "fewshot_reference": 0.731395202020202,
        "always_different": 0.975,
        "oneshot_first": 0.1553030303030303,
        "oneshot_random": 0.1473989898989899,
        "5way_1shot": 0.50192,
        "5way_5shot": 0.6225866666666667,
        "recall_at_1": 0.20275,
    },
    "70_30": {
        "triplet": 0.8865,
        "pair_fixed": 0.8139,
        "pair_auc": 0.8982497110296498,
        "fewshot_reference": 0.7517396184062851,
        "always_different": 0.9666666666666667,
        "oneshot_first": 0.18249158249158248,
        "oneshot_random": 0.19516161616161615,
        "5way_1shot": 0.5399733333333333,
        "5way_5shot": 0.6625066666666667,
        "recall_at_1": 0.2826666666666667,
    },
    "80_20": {
        "triplet": 0.8779,
        "pair_fixed": 0.8102,
        "pair_auc": 0.8946218389092115,
        "fewshot_reference": 0.7595959595959596,
        "always_different": 0.95,
        "oneshot_first": 0.18888888888888888,
        "oneshot_random": 0.2633333333333333,
        "5way_1shot": 0.5414133333333334,
        "5way_5shot": 0.6632666666666667,
        "recall_at_1": 0.3685,
    },
    "90_10": {
        "triplet": 0.8812,
        "pair_fixed": 0.8102,
        "pair_auc": 0.8924629427431435,
        "fewshot_reference": 0.7909090909090909,
        "always_different": 0.9,
        "oneshot_first": 0.4121212121212121,
        "oneshot_random": 0.49628282828282844,
        "5way_1shot": 0.6290666666666668,
        "5way_5shot": 0.7377866666666666,
        "recall_at_1": 0.607,
    },
    "100_0": {
        "triplet": 0.8891,
        "pair_fixed": 0.8174,
        "pair_auc": 0.9008473636446415,
    },
}
