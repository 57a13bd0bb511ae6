"""The losses written from their definitions: float64 numpy, a loop over every triplet or pair.

Nothing here calls the library: these are what its losses must equal. A distance is
`1 - cos` (never below 0) or the squared euclidean distance; with `root`, its square
root after adding 1e-8 (which keeps the gradient finite at zero distance).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

ROOT_EPSILON = 1e-8


def distance(x: np.ndarray, y: np.ndarray, kind: str, root: bool = False) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if kind == "cosine":
        d = max(1.0 - float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)), 0.0)
    else:
        d = float(np.sum((x - y) ** 2))
    return math.sqrt(d + ROOT_EPSILON) if root else d


def _distances(embeddings, kind, root):
    n = len(embeddings)
    return [
        [distance(embeddings[i], embeddings[j], kind, root) for j in range(n)] for i in range(n)
    ]


def _positives(labels, a):
    return [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]


def _negatives(labels, a):
    return [n for n in range(len(labels)) if labels[n] != labels[a]]


def triplet(anchor, positive, negative, kind: str, margin: float) -> list[float]:
    """Per-sample `max(d(a, p) - d(a, n) + margin, 0)`."""
    return [
        max(distance(a, p, kind) - distance(a, n, kind) + margin, 0.0)
        for a, p, n in zip(anchor, positive, negative, strict=True)
    ]


def batch_all(labels, embeddings, kind, margin, root=False) -> tuple[float, float]:
    """Mean over the violating triplets of the batch, and their share of all triplets."""
    d = _distances(embeddings, kind, root)
    values = [
        max(d[a][p] - d[a][n] + margin, 0.0)
        for a in range(len(labels))
        for p, n in itertools.product(_positives(labels, a), _negatives(labels, a))
    ]
    violating = [v for v in values if v > 0.0]
    if not values:
        return 0.0, 0.0
    return (sum(violating) / len(violating) if violating else 0.0), len(violating) / len(values)


def batch_hard(labels, embeddings, kind, margin, soft=False, selective=False, root=False) -> float:
    """Mean over anchors with a positive and a negative: hardest positive against hardest negative.

    soft: `log(1 + exp(gap))`; selective: where the hardest negative is nearer than the
    hardest positive, that negative's cosine similarity `1 - d` alone.
    """
    d = _distances(embeddings, kind, root)
    per_anchor = []
    for a in range(len(labels)):
        positives, negatives = _positives(labels, a), _negatives(labels, a)
        if not positives or not negatives:
            continue
        hardest_positive = max(d[a][p] for p in positives)
        hardest_negative = min(d[a][n] for n in negatives)
        gap = hardest_positive - hardest_negative
        if selective and gap > 0:
            per_anchor.append(1.0 - hardest_negative)
        elif soft:
            per_anchor.append(math.log1p(math.exp(gap)))
        else:
            per_anchor.append(max(gap + margin, 0.0))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


def batch_semihard(labels, embeddings, kind, margin, rule="window", root=False) -> float:
    """Mean over (anchor, positive) pairs whose anchor has a negative.

    window (FaceNet): the closest negative with d(a,p) < d(a,n) < d(a,p) + margin, else
    the closest negative of all. tensorflow (TensorFlow's triplet_semihard_loss): the
    closest negative with d(a,n) > d(a,p), else the farthest negative.
    """
    d = _distances(embeddings, kind, root)
    per_pair = []
    for a in range(len(labels)):
        negatives = _negatives(labels, a)
        if not negatives:
            continue
        for p in _positives(labels, a):
            if rule == "window":
                inside = [d[a][n] for n in negatives if d[a][p] < d[a][n] < d[a][p] + margin]
                chosen = min(inside) if inside else min(d[a][n] for n in negatives)
            else:
                beyond = [d[a][n] for n in negatives if d[a][n] > d[a][p]]
                chosen = min(beyond) if beyond else max(d[a][n] for n in negatives)
            per_pair.append(max(d[a][p] - chosen + margin, 0.0))
    return sum(per_pair) / len(per_pair) if per_pair else 0.0


def contrastive(same, distances, margin) -> list[float]:
    """Per pair: the distance for a same-class pair, `max(margin - d, 0)` otherwise."""
    return [
        float(d) if s else max(margin - float(d), 0.0) for s, d in zip(same, distances, strict=True)
    ]


def classification(labels, scores, scale=1.0, margin=0.0, label_smoothing=0.0) -> list[float]:
    """Per sample: cross-entropy of softmax(scale * (score - margin on the true class)).

    The target puts `1 - label_smoothing` on the true class plus `label_smoothing / C` on
    every class.
    """
    losses = []
    for label, row in zip(labels, np.asarray(scores, np.float64), strict=True):
        classes = len(row)
        logits = [scale * (row[c] - (margin if c == label else 0.0)) for c in range(classes)]
        top = max(logits)
        log_total = top + math.log(sum(math.exp(v - top) for v in logits))
        target = [
            label_smoothing / classes + (1 - label_smoothing) * (c == label) for c in range(classes)
        ]
        losses.append(-sum(t * (v - log_total) for t, v in zip(target, logits, strict=True)))
    return losses


# ---------------------------------------------------------------------------
# The pair-based and proxy-based losses, each from its paper's formula, with the batch
# reduction and the treatment of missing pairs of pytorch-metric-learning's loss.


def _unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


def _cosine(x, y) -> float:
    return float(_unit(x) @ _unit(y))


def _logsumexp(values) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _mean_above_zero(values) -> float:
    above = [v for v in values if v > 0.0]
    return sum(above) / len(above) if above else 0.0


def _others(labels, embeddings, a, memory):
    """The (label, embedding) of every image anchor `a` pairs with: the batch's other
    images, then the memory's filled slots (label >= 0)."""
    others = [(labels[k], embeddings[k]) for k in range(len(labels)) if k != a]
    if memory is not None:
        others += [(label, e) for e, label in zip(*memory, strict=True) if label >= 0]
    return others


def _similarities(labels, embeddings, a, memory):
    """Anchor `a`'s cosines to its positives and to its negatives."""
    pairs = [
        (label, _cosine(embeddings[a], e)) for label, e in _others(labels, embeddings, a, memory)
    ]
    return (
        [s for label, s in pairs if label == labels[a]],
        [s for label, s in pairs if label != labels[a]],
    )


def multi_similarity(labels, embeddings, alpha, beta, base, memory=None) -> float:
    total = 0.0
    for a in range(len(labels)):
        pos, neg = _similarities(labels, embeddings, a, memory)
        total += math.log(1.0 + sum(math.exp(-alpha * (s - base)) for s in pos)) / alpha
        total += math.log(1.0 + sum(math.exp(beta * (s - base)) for s in neg)) / beta
    return total / len(labels)


def circle(labels, embeddings, m, gamma, memory=None) -> float:
    per_anchor = []
    for a in range(len(labels)):
        pos, neg = _similarities(labels, embeddings, a, memory)
        if not pos or not neg:
            per_anchor.append(0.0)
            continue
        lp = _logsumexp([-gamma * max(1 + m - s, 0.0) * (s - (1 - m)) for s in pos])
        ln = _logsumexp([gamma * max(s + m, 0.0) * (s - m) for s in neg])
        per_anchor.append(_softplus(lp + ln))
    return _mean_above_zero(per_anchor)


def ntxent(labels, embeddings, temperature, memory=None) -> float:
    anchors = [_similarities(labels, embeddings, a, memory) for a in range(len(labels))]
    if not any(neg for _, neg in anchors):
        return 0.0
    per_pair = []
    for pos, neg in anchors:
        for s_ap in pos:
            logits = [s_ap / temperature, *(s / temperature for s in neg)]
            per_pair.append(_logsumexp(logits) - s_ap / temperature)
    return sum(per_pair) / len(per_pair) if per_pair else 0.0


def supcon(labels, embeddings, temperature, memory=None) -> float:
    anchors = [_similarities(labels, embeddings, a, memory) for a in range(len(labels))]
    if not any(pos for pos, _ in anchors) or not any(neg for _, neg in anchors):
        return 0.0
    per_anchor = []
    for pos, neg in anchors:
        if not pos:
            per_anchor.append(0.0)
            continue
        denominator = _logsumexp([s / temperature for s in pos + neg])
        per_anchor.append(-sum(s / temperature - denominator for s in pos) / len(pos))
    return _mean_above_zero(per_anchor)


def lifted_structure(labels, embeddings, neg_margin, pos_margin, memory=None) -> float:
    total = 0.0
    for a in range(len(labels)):
        distances = [
            (label, float(np.linalg.norm(_unit(embeddings[a]) - _unit(e))))
            for label, e in _others(labels, embeddings, a, memory)
        ]
        pos = [d - pos_margin for label, d in distances if label == labels[a]]
        neg = [neg_margin - d for label, d in distances if label != labels[a]]
        total += max((_logsumexp(pos) if pos else 0.0) + (_logsumexp(neg) if neg else 0.0), 0.0)
    return total / len(labels)


def _class_cosines(embeddings, proxies, sub_centers=1):
    rows = len(proxies) // sub_centers
    return [
        [
            max(_cosine(e, proxies[c * sub_centers + k]) for k in range(sub_centers))
            for c in range(rows)
        ]
        for e in embeddings
    ]


def proxy_anchor(labels, embeddings, proxies, margin, alpha) -> float:
    cos = _class_cosines(embeddings, proxies)
    classes = len(proxies)
    pos_total, with_positives, neg_total = 0.0, 0, 0.0
    for c in range(classes):
        mine = [cos[i][c] for i in range(len(labels)) if labels[i] == c]
        others = [cos[i][c] for i in range(len(labels)) if labels[i] != c]
        if mine:
            with_positives += 1
            pos_total += math.log(1.0 + sum(math.exp(-alpha * (s - margin)) for s in mine))
        neg_total += math.log(1.0 + sum(math.exp(alpha * (s + margin)) for s in others))
    return pos_total / max(with_positives, 1) + neg_total / classes


def proxy_nca(labels, embeddings, proxies, softmax_scale) -> float:
    total = 0.0
    for e, y in zip(embeddings, labels, strict=True):
        logits = [-softmax_scale * float(np.sum((_unit(e) - _unit(p)) ** 2)) for p in proxies]
        total += _logsumexp(logits) - logits[y]
    return total / len(labels)


def arcface(labels, embeddings, proxies, margin, scale, sub_centers=1) -> float:
    cos = _class_cosines(embeddings, proxies, sub_centers)
    total = 0.0
    for row, y in zip(cos, labels, strict=True):
        logits = [scale * c for c in row]
        angle = math.acos(min(max(row[y], -1.0), 1.0))
        logits[y] = scale * math.cos(angle + math.radians(margin))
        total += _logsumexp(logits) - logits[y]
    return total / len(labels)


def cosface(labels, embeddings, proxies, margin, scale) -> float:
    cos = _class_cosines(embeddings, proxies)
    total = 0.0
    for row, y in zip(cos, labels, strict=True):
        logits = [scale * (c - (margin if k == y else 0.0)) for k, c in enumerate(row)]
        total += _logsumexp(logits) - logits[y]
    return total / len(labels)
