"""Sparse codes against a fixed dictionary (scikit-learn's sparse_encode, as DictionaryLearning,
MiniBatchDictionaryLearning and SparseCoder transform): orthogonal matching pursuit."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op
from mle_runtime.ops.kernels import HIGHEST


@register_op("OrthogonalMatchingPursuit")
def orthogonal_matching_pursuit(cov: jax.Array, gram: jax.Array, *, n_nonzero: int) -> jax.Array:
    """(rows, atoms) codes from each row's correlations with the atoms (``cov``, rows x atoms) and the
    atoms' Gram matrix: scikit-learn's Gram OMP (``_gram_omp``), row by row in lockstep. Each step picks
    the atom most correlated with the residual, extends the Cholesky factor of the chosen atoms' Gram
    matrix by one row, and solves the least squares on them; a row stops early, keeping the code it has,
    where scikit-learn's does: the atom is already chosen, its correlation squared is below eps, or it
    depends on the chosen ones (the factor's new diagonal squared at most eps)."""
    rows = cov.shape[0]
    eps = jnp.finfo(cov.dtype).eps
    every = jnp.arange(rows)
    chosen = jnp.zeros((rows, n_nonzero), jnp.int32)
    factor = jnp.zeros((rows, n_nonzero, n_nonzero), cov.dtype)
    code = jnp.zeros_like(cov)
    going = jnp.ones(rows, bool)
    residual = cov
    for t in range(n_nonzero):
        pick = jnp.argmax(jnp.abs(residual), axis=1).astype(jnp.int32)
        stop = jnp.any(chosen[:, :t] == pick[:, None], axis=1) | (residual[every, pick] ** 2 < eps)
        if t == 0:
            diagonal = jnp.sqrt(gram[pick, pick])
        else:
            below = gram[pick[:, None], chosen[:, :t]]  # (rows, t): the new atom against the chosen
            solved = jax.scipy.linalg.solve_triangular(factor[:, :t, :t], below[:, :, None], lower=True)[:, :, 0]
            square = gram[pick, pick] - jnp.sum(solved * solved, axis=1)
            stop |= square <= eps
            diagonal = jnp.sqrt(jnp.where(square > 0, square, 1))
            factor = factor.at[:, t, :t].set(solved)
        factor = factor.at[:, t, t].set(diagonal)
        chosen = chosen.at[:, t].set(pick)
        going &= ~stop
        lower = factor[:, : t + 1, : t + 1]
        target = jnp.take_along_axis(cov, chosen[:, : t + 1], axis=1)[:, :, None]
        half = jax.scipy.linalg.solve_triangular(lower, target, lower=True)
        weights = jax.scipy.linalg.solve_triangular(lower, half, lower=True, trans="T")[:, :, 0]
        fitted = jnp.einsum("rk,rak->ra", weights, gram[:, chosen[:, : t + 1]].transpose(1, 0, 2), precision=HIGHEST)
        residual = jnp.where(going[:, None], cov - fitted, residual)
        step = jnp.zeros_like(cov).at[every[:, None], chosen[:, : t + 1]].set(weights)
        code = jnp.where(going[:, None], step, code)
    return code


@register_op("SoftThreshold")
def soft_threshold(cov: jax.Array, *, threshold: float, positive: bool = False) -> jax.Array:
    """The "threshold" algorithm: sign(c) max(|c| - threshold, 0), negative codes cut to 0 when positive."""
    code = jnp.sign(cov) * jnp.maximum(jnp.abs(cov) - threshold, 0)
    return jnp.maximum(code, 0) if positive else code


@register_op("SplitSign")
def split_sign(code: jax.Array) -> jax.Array:
    """``split_sign``: the codes' positive parts, then their negative parts negated, side by side."""
    return jnp.concatenate([jnp.maximum(code, 0), -jnp.minimum(code, 0)], axis=1)
