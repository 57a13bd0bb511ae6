import dataclasses

import numpy as np
import pytest

from keras_siamese.evaluation import protocol
from keras_siamese.evaluation.protocol import PairScores
from keras_siamese.evaluation.results import Accuracy
from keras_siamese.model import distances


def _clusters(num_classes=4, per_class=6, dim=8, noise=0.01, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:num_classes] * 10 + offset
    labels = np.repeat(np.arange(num_classes), per_class)
    emb = centres[labels] + rng.normal(scale=noise, size=(len(labels), dim))
    return emb.astype(np.float32), labels


def _embeddings(seen, unseen, val):
    return protocol.Embeddings(*seen, *unseen, *val)


def _scores(same_d, diff_d):
    d = np.array(same_d + diff_d, np.float64)
    return PairScores(d, np.array([True] * len(same_d) + [False] * len(diff_d)))


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_separated_clusters_score_one_everywhere(distance):
    emb = _embeddings(
        _clusters(num_classes=6, per_class=25),
        _clusters(num_classes=6, per_class=25, seed=1),
        _clusters(num_classes=6, per_class=10, seed=2),
    )
    m = protocol.evaluate(emb, distance).metrics
    assert m.seen.triplet_accuracy.value == 1.0
    assert m.seen.pair.calibrated.accuracy.value == 1.0
    assert m.seen.pair.roc_auc == 1.0
    assert m.seen.pair.equal_error_rate == 0.0
    u = m.unseen
    assert u.fewshot_pairs.balanced_calibrated.value == 1.0
    assert u.oneshot.first_support.value == 1.0
    assert u.oneshot.random_supports.value == 1.0
    assert [e.accuracy.value for e in u.episodes] == [1.0, 1.0]
    assert u.retrieval.recall_at_1.value == 1.0
    assert u.retrieval.map_at_r.value == pytest.approx(1.0)


def test_identical_embeddings_score_chance():
    labels = np.repeat(np.arange(5), 20)
    same = np.ones((100, 3), np.float32)
    emb = _embeddings((same, labels), (same, labels), (same, labels))
    m = protocol.evaluate(emb, "euclidean").metrics
    # Ties go to a seeded coin: about half the triplets count.
    assert m.seen.triplet_accuracy.value == pytest.approx(0.5, abs=0.02)
    assert m.seen.pair.calibrated.accuracy.value == 0.5
    assert m.seen.pair.roc_auc == 0.5
    assert m.seen.pair.equal_error_rate == pytest.approx(0.5)
    u = m.unseen
    assert u.oneshot.first_support.value == pytest.approx(1 / 5)
    assert u.oneshot.random_supports.value == pytest.approx(1 / 5)
    assert u.episodes[0].accuracy.value == pytest.approx(1 / 5)
    # Every neighbour ties: the retrieved one is some other image, right about 19/99 times.
    assert u.retrieval.recall_at_1.value == pytest.approx(19 / 99, abs=0.02)


def test_oneshot_uses_the_first_image_of_each_class_as_support():
    # 1-D embeddings. Supports: class 0 at 0.0, class 1 at 10.0 (first images).
    emb = np.array([[0.0], [10.0], [6.0], [4.0], [9.0]], np.float32)
    labels = np.array([0, 1, 0, 0, 1])
    # Queries: 6.0 (class 0 -> nearest 10 -> wrong), 4.0 (right), 9.0 (right).
    result = protocol.oneshot_accuracy(emb, labels, "euclidean")
    assert result.count == 3
    assert result.value == pytest.approx(2 / 3)


def test_sampled_triplets_are_valid_and_seeded():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, 3])
    t = protocol.sample_triplets(labels, 1000, seed=5)
    assert np.all(labels[t[:, 0]] == labels[t[:, 1]]) and np.all(t[:, 0] != t[:, 1])
    assert np.all(labels[t[:, 0]] != labels[t[:, 2]])
    assert 3 not in labels[t[:, 0]]  # a single-image class is never an anchor
    assert 3 in labels[t[:, 2]]
    np.testing.assert_array_equal(t, protocol.sample_triplets(labels, 1000, seed=5))


def test_sampled_pairs_are_balanced_and_valid():
    labels = np.repeat(np.arange(7), 5)
    pairs, same = protocol.sample_pairs(labels, 1001, seed=3)
    assert len(pairs) == 1001 and same.sum() == 501
    assert np.all(pairs[:, 0] != pairs[:, 1])
    np.testing.assert_array_equal(labels[pairs[:, 0]] == labels[pairs[:, 1]], same)


def test_threshold_calibration_on_a_hand_built_case():
    # Sorted: S S D S S D D. "Same" up to 0.5 gets 6 of 7 right; up to 0.2 only 5.
    scores = _scores([0.1, 0.2, 0.4, 0.5], [0.3, 0.6, 0.7])
    assert protocol.calibrate_threshold(scores) == pytest.approx(0.55)
    assert protocol.pair_accuracy(scores, 0.55).value == pytest.approx(6 / 7)
    # Everything "different" is best when every same pair is far.
    assert protocol.calibrate_threshold(_scores([0.9], [0.1, 0.2])) < 0.1


def test_calibration_never_splits_equal_distances():
    # 0.5 appears as same and different: the threshold is below or above both.
    t = protocol.calibrate_threshold(_scores([0.1, 0.5, 0.5], [0.5, 0.9]))
    assert t == pytest.approx(0.7)


def test_roc_auc_and_equal_error_rate_by_hand():
    # Same-class closer than different-class in 3 of the 4 (same, diff) combinations.
    assert protocol.roc_auc(_scores([0.1, 0.4], [0.2, 0.5])) == pytest.approx(3 / 4)
    # A tie counts half: (0.3 vs 0.3) -> 0.5, (0.3 vs 0.6) -> 1.
    assert protocol.roc_auc(_scores([0.3], [0.3, 0.6])) == pytest.approx(3 / 4)
    # At 0.35 one same pair in four is rejected and no different pair is accepted; at 0.4
    # one of each: the rates meet at 0.25.
    scores = _scores([0.1, 0.2, 0.3, 0.6], [0.4, 0.5, 0.7, 0.8])
    assert protocol.equal_error_rate(scores) == pytest.approx(0.25)


def test_reference_fewshot_metric_is_beaten_by_always_different():
    # Perfectly separated classes sharing a large offset: every cosine similarity is
    # above 0.2, so the reference's rule calls every pair "same".
    emb, labels = _clusters(num_classes=4, per_class=10, offset=20.0)
    scores = protocol.reference_fewshot_pairs(emb, labels, "cosine")
    assert len(scores.same) == 4 * 36 and scores.same.sum() == 36
    ref = protocol.pair_accuracy(scores, distances.FIXED_THRESHOLDS["cosine"])
    always_different = 1.0 - scores.same.mean()
    assert ref.value == pytest.approx(0.25) and always_different == pytest.approx(0.75)
    assert protocol.oneshot_accuracy(emb, labels, "cosine").value == 1.0


def test_calibrated_threshold_ignores_test_embeddings():
    rng = np.random.default_rng(0)
    val = _clusters(num_classes=5, per_class=20, noise=3.0, seed=4)
    seen = _clusters(num_classes=5, per_class=20, noise=3.0, seed=5)
    unseen = _clusters(num_classes=5, per_class=20, noise=3.0, seed=6)
    first = protocol.evaluate(_embeddings(seen, unseen, val), "cosine")
    poisoned = [(rng.normal(size=e.shape).astype(np.float32), lab) for e, lab in (seen, unseen)]
    second = protocol.evaluate(_embeddings(*poisoned, val), "cosine")
    assert first.calibrated_threshold == second.calibrated_threshold
    assert first.metrics.seen.pair != second.metrics.seen.pair


def test_split_without_unseen_classes_or_validation_leaves_metrics_absent():
    seen = _clusters()
    empty = (np.zeros((0, 8), np.float32), np.zeros(0, np.int64))
    m = protocol.evaluate(_embeddings(seen, empty, empty), "cosine").metrics
    assert m.unseen is None and m.seen.pair.calibrated is None
    assert len(m.notes) == 2
    assert "unseen" not in m.to_json() and "calibrated" not in m.to_json()["seen"]["pair"]


def test_too_few_unseen_classes_for_the_episodes_leaves_them_absent():
    seen, unseen = _clusters(), _clusters(num_classes=3, per_class=20)
    m = protocol.evaluate(_embeddings(seen, unseen, seen), "cosine", ways=5).metrics
    assert m.unseen.episodes == []
    assert m.unseen.oneshot.ways == 3
    assert any("5-way" in n for n in m.notes)


def test_episodes_draw_distinct_classes_and_images():
    labels = np.repeat(np.arange(8), 12)[np.random.default_rng(0).permutation(96)]
    idx = protocol.sample_episodes(labels, ways=5, shots=2, queries=10, episodes=200, seed=1)
    assert idx.shape == (200, 5, 12)
    episode_labels = labels[idx]
    assert np.all(episode_labels == episode_labels[:, :, :1])  # one class per row
    assert all(len(set(e[:, 0])) == 5 for e in episode_labels)
    assert all(len(set(e.ravel())) == 60 for e in idx)
    np.testing.assert_array_equal(idx, protocol.sample_episodes(labels, 5, 2, 10, 200, seed=1))
    with pytest.raises(ValueError, match="13 images per class"):
        protocol.sample_episodes(labels, ways=5, shots=3, queries=10, episodes=1, seed=0)


def test_episodes_use_the_nearest_class_mean(monkeypatch):
    # Class 0 supports at 0 and 4 (mean 2), class 1 at 3.5 and 3.5. The class-0 query
    # at 2.5 is nearest to a class-1 support but to the class-0 mean.
    emb = np.array([[0.0], [4.0], [2.5], [3.5], [3.5], [3.6]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    episode = np.array([[[0, 1, 2], [3, 4, 5]]])
    monkeypatch.setattr(protocol, "sample_episodes", lambda *args, **kwargs: episode)
    acc = protocol.episodic_accuracy(
        emb, labels, "euclidean", ways=2, shots=2, queries=1, episodes=1
    )
    assert acc.value == 1.0
    nearest_support = protocol.nearest_support_accuracy(
        emb[[0, 1, 3, 4, 2, 5]], labels[[0, 1, 3, 4, 2, 5]], np.arange(4), "euclidean"
    )
    assert nearest_support.value == 0.5


def test_one_shot_episodes_agree_with_nearest_support():
    emb, labels = _clusters(num_classes=5, per_class=20, noise=4.0)
    idx = protocol.sample_episodes(labels, 5, 1, 15, 30, seed=0)
    supports = np.arange(0, 80, 16)  # the first image of each class's row
    expected = [
        protocol.nearest_support_accuracy(
            emb[e.ravel()], labels[e.ravel()], supports, "euclidean"
        ).value
        for e in idx
    ]
    acc = protocol.episodic_accuracy(emb, labels, "euclidean", ways=5, shots=1, episodes=30)
    assert acc.value == pytest.approx(np.mean(expected))


def _brute_force_retrieval(emb, labels):
    hits, aps = [], []
    for i in range(len(emb)):
        d = ((emb - emb[i]) ** 2).sum(axis=1)
        d[i] = np.inf
        order = np.argsort(d, kind="stable")
        r = int((labels == labels[i]).sum()) - 1
        if r == 0:
            continue
        rel = labels[order[:r]] == labels[i]
        hits.append(rel[0])
        aps.append(sum(rel[: k + 1].mean() for k in range(r) if rel[k]) / r)
    return np.mean(hits), np.mean(aps)


def test_retrieval_matches_a_brute_force_count():
    emb, labels = _clusters(num_classes=5, per_class=9, noise=6.0, seed=3)
    labels = labels.copy()
    labels[-1] = 9  # a class of one image: never a query
    scores = protocol.retrieval_scores(emb, labels, "euclidean", chunk=7)
    recall, map_r = _brute_force_retrieval(emb.astype(np.float64), labels)
    assert scores.recall_at_1.count == 44
    assert scores.recall_at_1.value == pytest.approx(recall)
    assert scores.map_at_r.value == pytest.approx(map_r)


def test_map_at_r_by_hand():
    # Query 0 at 0.0 (class 0, R = 2): results 1.0 (class 0), 2.0 (class 1):
    # AP = (1/1) / 2 = 0.5.
    emb = np.array([[0.0], [1.0], [5.0], [2.0], [6.0], [7.0]], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = protocol.retrieval_scores(emb[:], labels, "euclidean")
    _, brute = _brute_force_retrieval(emb, labels)
    assert scores.map_at_r.value == pytest.approx(brute)
    single = protocol.retrieval_scores(emb, labels, "euclidean", chunk=1)
    assert single.map_at_r.value == pytest.approx(brute)


def test_random_supports_hold_one_image_per_class_and_are_seeded():
    labels = np.array([2, 0, 1, 2, 0, 1, 1, 2])
    draws = protocol.random_supports(labels, draws=50, seed=1)
    assert draws.shape == (50, 3)
    assert np.all(labels[draws] == np.array([0, 1, 2]))
    assert len({tuple(d) for d in draws}) > 1
    np.testing.assert_array_equal(draws, protocol.random_supports(labels, 50, 1))


def test_a_proportions_interval_is_wilsons_and_a_means_the_normal_one():
    acc = Accuracy.from_hits(np.array([1] * 80 + [0] * 20))
    assert acc.value == 0.8 and acc.count == 100
    # Wilson's 95% interval of 80 in 100, worked out by hand: 0.7112 to 0.8666.
    assert (acc.low, acc.high) == (
        pytest.approx(0.71117, abs=1e-5),
        pytest.approx(0.86664, abs=1e-5),
    )
    assert acc.ci95 == pytest.approx(0.8 - acc.low)
    # Two queries, both right: not 1.0 +- 0 but 0.342 to 1.
    few = Accuracy.from_hits(np.array([True, True]))
    assert few.low == pytest.approx(0.34238, abs=1e-5) and few.high == pytest.approx(1.0)
    assert str(few) == "1.0000 +- 0.6576 (n=2)"
    mean = Accuracy.from_means(np.array([0.2, 0.4, 0.6]))
    assert mean.value == pytest.approx(0.4)
    assert mean.ci95 == pytest.approx(1.96 * 0.2 / np.sqrt(3), rel=1e-4)


def test_confidence_intervals_shrink_and_cover_the_true_rate():
    rng = np.random.default_rng(0)
    p = 0.7
    small = Accuracy.from_hits(rng.random(100) < p)
    large = Accuracy.from_hits(rng.random(10_000) < p)
    assert large.ci95 < small.ci95 / 5
    covered = []
    for _ in range(1000):
        acc = Accuracy.from_hits(rng.random(400) < p)
        covered.append(abs(acc.value - p) <= acc.ci95)
    assert 0.92 <= np.mean(covered) <= 0.98
    mean_covered = []
    for _ in range(1000):
        acc = Accuracy.from_means(rng.normal(p, 0.1, size=200))
        mean_covered.append(abs(acc.value - p) <= acc.ci95)
    assert 0.92 <= np.mean(mean_covered) <= 0.98


def test_summary_lines_mention_every_headline_metric():
    emb = _embeddings(
        _clusters(num_classes=6, per_class=25),
        _clusters(num_classes=6, per_class=25, seed=1),
        _clusters(num_classes=6, per_class=10, seed=2),
    )
    text = "\n".join(protocol.summary_lines(protocol.evaluate(emb, "cosine").metrics))
    for phrase in ("Triplet", "calibrated", "AUC", "always answering", "6-way one-shot", "MAP@R"):
        assert phrase in text


def test_metrics_survive_a_json_round_trip_and_keep_their_keys():
    import json

    from keras_siamese.evaluation.results import Metrics

    emb = _embeddings(
        _clusters(), _clusters(num_classes=6, per_class=25, seed=1), _clusters(seed=2)
    )
    m = protocol.evaluate(emb, "cosine").metrics
    text = json.dumps(m.to_json())
    back = Metrics.from_json(json.loads(text))
    assert back == m
    data = json.loads(text)
    # The keys that metrics.json and eval.json have always had.
    assert data["seen"]["pair"]["calibrated"]["accuracy"]["ci95"] >= 0
    assert data["unseen"]["oneshot"]["random_supports"]["count"] == 100
    assert data["unseen"]["episodes"][0]["ways"] == 5
    assert data["evaluation_seed"] == 0 and "seed" not in data
    with pytest.raises(ValueError, match="seen"):
        Metrics.from_json({"distance": "cosine", "evaluation_seed": 0})
    # A record written before the two seeds were told apart: its `seed` was the evaluation's.
    old = {k: v for k, v in data.items() if k != "evaluation_seed"}
    assert Metrics.from_json({**old, "seed": 3}).evaluation_seed == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_and_equal_error_rate_agree_with_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    same = rng.random(2000) < 0.5
    # Overlapping distance distributions, rounded so that ties occur.
    distances = np.round(np.where(same, rng.normal(0.4, 0.2, 2000), rng.normal(0.7, 0.2, 2000)), 2)
    scores = PairScores(distances=distances, same=same)
    assert protocol.roc_auc(scores) == pytest.approx(metrics.roc_auc_score(same, -distances))
    fpr, tpr, _ = metrics.roc_curve(same, -distances, drop_intermediate=False)
    ours_fpr, ours_tpr, _ = protocol.roc_curve(scores)
    np.testing.assert_allclose(ours_fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(ours_tpr, tpr, atol=1e-12)
    # scikit-learn's curve, interpolated where the miss rate meets the false-accept rate.
    fnr = 1.0 - tpr
    i = int(np.flatnonzero(fnr - fpr <= 0)[0])
    g0, g1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    w = g0 / (g0 - g1)
    expected = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    assert protocol.equal_error_rate(scores) == pytest.approx(expected, abs=1e-9)
    assert 0.1 < expected < 0.4


def test_a_runs_budget_names_the_classifier_beside_its_mining():
    from keras_siamese.evaluation import report
    from keras_siamese.evaluation.results import Budget, RunFacts

    budget = Budget(
        objective="batch_hard",
        epochs=6,
        steps_per_epoch=60,
        batch_size=128,
        images_per_step=128,
        train_seconds=280.0,
        classifier_weight=0.5,
    )
    facts = RunFacts(export="e", dataset="cifar100", split="90_10", distance="cosine", depth=56)
    text = report.budget_text(dataclasses.replace(facts, budget=budget))
    assert text.startswith("batch_hard + classifier × 0.5, depth 56, 6 ep × 60 steps × 128 images")
    assert text.endswith(", 5 min")
    # A record written before the field existed is of mining alone.
    older = {k: v for k, v in budget.to_json().items() if k != "classifier_weight"}
    alone = Budget.from_json(older)
    assert alone.classifier_weight == 0.0
    assert report.budget_text(dataclasses.replace(facts, budget=alone)).startswith("batch_hard, ")


def test_chunked_distances_give_the_metrics_of_one_pass(monkeypatch):
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(6), 25)
    embeddings = rng.normal(size=(len(labels), 16)).astype(np.float32) + labels[:, None] * 0.1
    whole = (
        protocol.triplet_accuracy(embeddings, labels, "cosine", num_triplets=500),
        protocol.pair_scores(embeddings, labels, "euclidean", num_pairs=300).distances,
        protocol.episodic_accuracy(embeddings, labels, "cosine", 5, 1, episodes=40),
    )
    monkeypatch.setattr(protocol, "_CHUNK_ROWS", 7)  # chunks of 7 rows, one episode each
    chunked = (
        protocol.triplet_accuracy(embeddings, labels, "cosine", num_triplets=500),
        protocol.pair_scores(embeddings, labels, "euclidean", num_pairs=300).distances,
        protocol.episodic_accuracy(embeddings, labels, "cosine", 5, 1, episodes=40),
    )
    assert whole[0] == chunked[0] and whole[2] == chunked[2]
    np.testing.assert_array_equal(whole[1], chunked[1])
