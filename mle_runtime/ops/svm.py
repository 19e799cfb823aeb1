"""libsvm's multiclass rules: one-vs-one votes, scikit-learn's one-vs-rest view of them, and libsvm's
probability estimates (Platt sigmoids per pair, coupled by Wu, Lin and Weng's method), computed step
for step as libsvm computes them so that the same rows stop iterating at the same step.

A decision matrix ``dec`` holds libsvm's pairwise values, (rows, pairs), pairs (0, 1), (0, 2), ...,
(0, k-1), (1, 2), ... in that order; a positive value favours the pair's first class."""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.ops import register_op

# libsvm clamps each pairwise probability into [MIN_PROB, 1 - MIN_PROB]
MIN_PROB = 1e-7


def _pairs(n_classes: int, n_pairs: int) -> list[tuple[int, int]]:
    pairs = list(itertools.combinations(range(n_classes), 2))
    if len(pairs) != n_pairs:
        raise ValueError(f"{n_pairs} pairwise decision values do not fit {n_classes} classes")
    return pairs


def _pair_members(n_classes: int, n_pairs: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, classes) 0/1 matrices: row p marks pair p's first class, and its second class."""
    pairs = _pairs(n_classes, n_pairs)
    first = np.zeros((len(pairs), n_classes), dtype=dtype)
    second = np.zeros((len(pairs), n_classes), dtype=dtype)
    for p, (i, j) in enumerate(pairs):
        first[p, i], second[p, j] = 1, 1
    return first, second


@register_op("OvoVotes")
def ovo_votes(dec: jax.Array, *, n_classes: int, rule: str = "libsvm") -> jax.Array:
    """(rows, classes) votes. "libsvm": a pair's first class wins when dec > 0, else its second (libsvm's
    predict, whose argmax takes the first class on ties); "ovr": scikit-learn's _ovr_decision_function(dec
    < 0, -dec) — votes (the first class wins when dec >= 0) plus summed confidences squashed into (-1/3, 1/3)."""
    if rule == "ovr":
        return ovo_combine((dec < 0).astype(jnp.int32), -dec, n_classes=n_classes)
    if rule != "libsvm":
        raise ValueError(f"OvoVotes: unknown rule {rule!r}")
    first, second = _pair_members(n_classes, dec.shape[-1], dec.dtype)
    wins = (dec > 0).astype(dec.dtype)
    return wins @ first + (1 - wins) @ second


def _sigmoid_predict(dec: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """libsvm's sigmoid_predict: 1 / (1 + exp(dec * A + B)), in the form that cannot overflow."""
    f = dec * a + b
    safe = jnp.where(f >= 0, f, -f)
    e = jnp.exp(-safe)
    return jnp.where(f >= 0, e / (1 + e), 1 / (1 + e))


@register_op("LibsvmProbability")
def libsvm_probability(dec: jax.Array, prob_a: jax.Array, prob_b: jax.Array, *, n_classes: int) -> jax.Array:
    """(rows, classes) probabilities as scikit-learn's libsvm computes them: pairwise sigmoids, clamped,
    coupled by multiclass_probability (at most max(100, k) sweeps, stopping per row once every
    |Qp_t - pQp| < 0.005 / k) — for two classes too: scikit-learn's libsvm predates libsvm 3.25's
    shortcut that returns the one sigmoid, and its iterations stop short of it by up to ~1e-3."""
    pairs = _pairs(n_classes, dec.shape[-1])
    r = jnp.clip(_sigmoid_predict(dec, prob_a, prob_b), MIN_PROB, 1 - MIN_PROB)
    k = n_classes
    pair_prob = {}
    for p, (i, j) in enumerate(pairs):
        pair_prob[i, j], pair_prob[j, i] = r[:, p], 1 - r[:, p]
    # Q as libsvm builds it, one (rows,) vector per entry
    q: list[list[jax.Array]] = [[jnp.zeros_like(r[:, 0])] * k for _ in range(k)]
    for t in range(k):
        q[t][t] = sum((pair_prob[j, t] * pair_prob[j, t] for j in range(k) if j != t), jnp.zeros_like(r[:, 0]))
        for j in range(k):
            if j != t:
                q[t][j] = -pair_prob[j, t] * pair_prob[t, j]
    eps = 0.005 / k
    max_iter = max(100, k)

    def products(p: list[jax.Array]) -> tuple[list[jax.Array], jax.Array]:
        qp, pqp = [], jnp.zeros_like(p[0])
        for t in range(k):
            acc = jnp.zeros_like(p[0])
            for j in range(k):
                acc = acc + q[t][j] * p[j]
            qp.append(acc)
            pqp = pqp + p[t] * acc
        return qp, pqp

    def sweep(p: list[jax.Array], qp: list[jax.Array], pqp: jax.Array) -> list[jax.Array]:
        p, qp = list(p), list(qp)
        for t in range(k):
            diff = (-qp[t] + pqp) / q[t][t]
            p[t] = p[t] + diff
            pqp = (pqp + diff * (diff * q[t][t] + 2 * qp[t])) / (1 + diff) / (1 + diff)
            for j in range(k):
                qp[j] = (qp[j] + diff * q[t][j]) / (1 + diff)
                p[j] = p[j] / (1 + diff)
        return p

    def body(state: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        step, p_all, done = state
        p = [p_all[:, t] for t in range(k)]
        qp, pqp = products(p)
        error = jnp.max(jnp.stack([jnp.abs(qp[t] - pqp) for t in range(k)]), axis=0)
        done = done | (error < eps)
        swept = jnp.stack(sweep(p, qp, pqp), axis=-1)
        return step + 1, jnp.where(done[:, None], p_all, swept), done

    def cond(state: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        step, _, done = state
        return (step < max_iter) & ~jnp.all(done)

    start = jnp.full((dec.shape[0], k), 1.0 / k, dtype=dec.dtype)
    _, coupled, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), start, jnp.zeros(dec.shape[0], bool)))
    return coupled


@register_op("OvoCombine")
def ovo_combine(predictions: jax.Array, confidences: jax.Array, *, n_classes: int) -> jax.Array:
    """scikit-learn's _ovr_decision_function(predictions, confidences): per pair (i, j), i gets a vote
    where the pair predicted 0, j where it predicted 1, and the confidences add to j and subtract from
    i; the summed confidences, squashed into (-1/3, 1/3), break ties between vote counts."""
    dtype = confidences.dtype
    first, second = _pair_members(n_classes, predictions.shape[-1], dtype)
    second_wins = (predictions == 1).astype(dtype)
    votes = (1 - second_wins) @ first + second_wins @ second
    confidence = confidences @ (second - first)
    return votes + confidence / (3 * (jnp.abs(confidence) + 1))
