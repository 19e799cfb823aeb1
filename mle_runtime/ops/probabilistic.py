"""Class scores of generative and distance-based classifiers (naive Bayes, discriminant analysis,
nearest centroids), computed in the form scikit-learn computes them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op


@register_op("DiagonalGaussianScores")
def diagonal_gaussian_scores(x: jax.Array, means: jax.Array, variances: jax.Array, offset: jax.Array) -> jax.Array:
    """offset[c] - 0.5 * sum_j (x_j - means[c, j])**2 / variances[c, j], (rows, classes): GaussianNB's
    joint log-likelihood, with offset = log prior - 0.5 * sum log(2 pi var) computed at export."""
    diff = x[:, None, :] - means[None, :, :]
    return offset - 0.5 * jnp.sum(diff * diff / variances[None, :, :], axis=-1)


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
