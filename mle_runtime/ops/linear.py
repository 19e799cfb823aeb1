"""Affine maps and the probability heads of linear classifiers."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op
from mle_runtime.ops.math import divide, pair


@register_op("Gemm")
def gemm(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """x @ w (+ b), with w of shape (in, out); full float32 precision (no TF32 on GPUs)."""
    y = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
    return y if b is None else y + b


@register_op("BinaryProba")
def binary_proba(score: jax.Array) -> jax.Array:
    """[sigmoid(-s), sigmoid(s)] for a 1-D binary decision score; both columns keep full relative precision.
    One sigmoid over s broadcast against [-1, 1] (the same values; one fused loop, not a concatenation)."""
    return jax.nn.sigmoid(score[..., None] * jnp.array([-1, 1], score.dtype))


@register_op("OvrNormalize")
def ovr_normalize(p: jax.Array) -> jax.Array:
    """Rows divided by their sum; an all-zero row becomes uniform (scikit-learn's OvR rule)."""
    total = jnp.sum(p, axis=-1, keepdims=True)
    zero = total == 0
    return divide(jnp.where(zero, 1.0, p), jnp.where(zero, p.shape[-1], total))


@register_op("ModifiedHuberProba")
def modified_huber_proba(score: jax.Array, *, binary: bool) -> jax.Array:
    """(clip(s, -1, 1) + 1) / 2: two columns [1 - p, p] when binary, else OvR-normalized."""
    p = (jnp.clip(score, -1.0, 1.0) + 1.0) / 2.0
    return pair(1.0 - p, p) if binary else ovr_normalize(p)
