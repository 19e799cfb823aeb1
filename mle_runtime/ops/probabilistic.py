"""Class scores of generative and distance-based classifiers (naive Bayes, discriminant analysis,
nearest centroids), and the topic weights of latent Dirichlet allocation, computed in the form
scikit-learn computes them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op
from mle_runtime.ops.chunks import in_row_chunks
from mle_runtime.ops.math import divide, mean


@register_op("DiagonalGaussianScores")
def diagonal_gaussian_scores(x: jax.Array, means: jax.Array, variances: jax.Array, offset: jax.Array) -> jax.Array:
    """offset[c] - 0.5 * sum_j (x_j - means[c, j])**2 / variances[c, j], (rows, classes): GaussianNB's
    joint log-likelihood, with offset = log prior - 0.5 * sum log(2 pi var) computed at export."""
    diff = x[:, None, :] - means[None, :, :]
    return offset - 0.5 * jnp.sum(divide(diff * diff, variances[None, :, :]), axis=-1)


@register_op("QuadraticScores")
def quadratic_scores(x: jax.Array, means: jax.Array, transforms: jax.Array, offset: jax.Array) -> jax.Array:
    """offset[c] - 0.5 * |(x - means[c]) @ transforms[c]|**2, (rows, classes): QuadraticDiscriminantAnalysis's
    log posterior, with transforms[c] = rotation * scaling**-0.5 and offset = -0.5 * sum log scaling + log prior."""
    centred = x[:, None, :] - means[None, :, :]
    projected = jnp.einsum("ncf,cfk->nck", centred, transforms, precision=jax.lax.Precision.HIGHEST)
    return offset - 0.5 * jnp.sum(projected * projected, axis=-1)


@register_op("SquaredDistances")
def squared_distances(x: jax.Array, points: jax.Array, *, metric: str = "euclidean") -> jax.Array:
    """(rows, points) squared distances: "euclidean" sums squared differences, "manhattan" squares the
    sum of absolute differences (NearestCentroid's discriminant)."""
    diff = x[:, None, :] - points[None, :, :]
    if metric == "euclidean":
        return jnp.sum(diff * diff, axis=-1)
    if metric == "manhattan":
        d = jnp.sum(jnp.abs(diff), axis=-1)
        return d * d
    raise ValueError(f"SquaredDistances: unknown metric {metric!r}")


@register_op("CategoricalScores")
def categorical_scores(x: jax.Array, log_prob: jax.Array, n_categories: jax.Array) -> jax.Array:
    """(rows, classes + 1): CategoricalNB's sum over features f of log_prob[f, x_f, class] (log_prob is
    padded to the most categories), then a column that is 1 on a row with a value that is no category
    of its feature (negative, not whole, or too large), where scikit-learn raises."""
    bad = (x < 0) | (x != jnp.floor(x)) | (x >= n_categories[None, :]) | jnp.isnan(x)
    index = jnp.where(bad, 0, x).astype(jnp.int32)  # (rows, features)
    features = jnp.arange(x.shape[1])[None, :]
    scores = jnp.sum(log_prob[features, index], axis=1)  # (rows, classes)
    return jnp.concatenate([scores, jnp.any(bad, axis=1, keepdims=True).astype(scores.dtype)], axis=1)


# scikit-learn's psi for LatentDirichletAllocation (_online_lda_fast.pyx, after Bernardo's AS 103):
# psi(x + 1) = psi(x) + 1/x up to x >= 6 (at most 6 steps above 1e-6), then the asymptotic series; below
# 1e-6, -EULER - 1/x. Its own arithmetic, step for step: the E-step stops a document on a threshold of it.
_EULER = 0.5772156649015329
_PSI_STEPS = 6


def _lda_psi(x: jax.Array) -> jax.Array:
    tiny = x <= 1e-6
    result, shifted = jnp.zeros_like(x), x
    for _ in range(_PSI_STEPS):
        below = shifted < 6
        result = jnp.where(below, result - 1.0 / shifted, result)
        shifted = jnp.where(below, shifted + 1, shifted)
    r = 1.0 / shifted
    result = result + (jnp.log(shifted) - 0.5 * r)
    r = r * r
    result = result - r * ((1.0 / 12.0) - r * ((1.0 / 120.0) - r * (1.0 / 252.0)))
    return jnp.where(tiny, -_EULER - 1.0 / x, result)


def _exp_dirichlet_expectation(doc_topic: jax.Array) -> jax.Array:
    """exp(E[log theta]) for theta ~ Dir(doc_topic), row by row: exp(psi(a) - psi(sum a))."""
    return jnp.exp(_lda_psi(doc_topic) - _lda_psi(jnp.sum(doc_topic, axis=-1, keepdims=True)))


# Documents go through the E-step this many at a time, each chunk until its slowest document settles:
# measured (benchmarks/bench_estimators.py's model, 1,000 terms, 10 topics, float64), 10,000 documents
# at 7.3k rows/s in 256-row chunks against 5.8k in one batch; 64- and 32-row chunks were slower.
LDA_CHUNK_ROWS = 256


@register_op("DirichletDocTopics")
def dirichlet_doc_topics(
    x: jax.Array, exp_topic_word: jax.Array, *, prior: float, max_iter: int, tol: float, eps: float
) -> jax.Array:
    """(rows, topics) unnormalized topic weights of each document (row of term counts), by the variational
    E-step LatentDirichletAllocation.transform runs: from weights of one, at most ``max_iter`` updates
    gamma = exp(E[log theta]) * ((x / (exp(E[log theta]) beta + eps)) beta.T) + prior, each document
    stopping at the first update that moves its weights by less than ``tol`` on average. Dense over the
    vocabulary (a term a document lacks adds an exact zero), where scikit-learn visits only its terms."""
    highest = jax.lax.Precision.HIGHEST
    State = tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # updates, weights, their exp(E[log]), done

    def update(x: jax.Array, state: State) -> State:
        i, doc_topic, exp_doc_topic, done = state
        norm_phi = jnp.matmul(exp_doc_topic, exp_topic_word, precision=highest) + eps
        new = exp_doc_topic * jnp.matmul(x / norm_phi, exp_topic_word.T, precision=highest) + prior
        moved = mean(jnp.abs(doc_topic - new), axis=-1) < tol
        keep = done[:, None]
        doc_topic = jnp.where(keep, doc_topic, new)
        exp_doc_topic = jnp.where(keep, exp_doc_topic, _exp_dirichlet_expectation(new))
        return i + 1, doc_topic, exp_doc_topic, done | moved

    def settle(x: jax.Array) -> jax.Array:
        ones = jnp.ones((x.shape[0], exp_topic_word.shape[0]), x.dtype)
        start: State = (jnp.int32(0), ones, _exp_dirichlet_expectation(ones), jnp.zeros(x.shape[0], bool))
        return jax.lax.while_loop(lambda s: (s[0] < max_iter) & ~jnp.all(s[3]), functools.partial(update, x), start)[1]

    return in_row_chunks(x, settle, LDA_CHUNK_ROWS)
