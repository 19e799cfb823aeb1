"""Sparse text features (see mle_runtime/text.py): each document's distinct vocabulary terms and their
values, (rows, L) each, padded with term 0 and value 0. A linear step multiplies them into its weights
directly; any other step reads them scattered into dense (rows, vocabulary) columns."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op


def _block(x: jax.Array, start: int, features: int, feature: int, part: int) -> jax.Array:
    """Part ``part`` (0: terms, 1: counts) of text feature ``feature`` in the graph input: after its
    first ``start`` columns come ``features`` pairs of L term and L count columns, L fixed by its width."""
    slots = (x.shape[-1] - start) // (2 * features)
    first = start + (2 * feature + part) * slots
    return x[..., first : first + slots]


@register_op("TextTerms")
def text_terms(x: jax.Array, *, start: int, features: int, feature: int) -> jax.Array:
    """Text feature ``feature``'s term indices, int32 (exact in the input's floats: at most 2**24)."""
    return _block(x, start, features, feature, 0).astype(jnp.int32)


@register_op("TextCounts")
def text_counts(x: jax.Array, *, start: int, features: int, feature: int) -> jax.Array:
    """Text feature ``feature``'s term counts."""
    return _block(x, start, features, feature, 1)


@register_op("GatherValues")
def gather_values(table: jax.Array, index: jax.Array) -> jax.Array:
    """table[index]: a per-term value (an idf, a scale) for each stored term."""
    return table[index]


@register_op("SparseGemm")
def sparse_gemm(terms: jax.Array, values: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """The dense (rows, vocabulary) matrix these terms and values stand for, times w (+ b): each stored
    term's weight row times its value, summed."""
    rows = w[terms]  # (..., L) or (..., L, out)
    y = jnp.sum(values * rows, axis=-1) if w.ndim == 1 else jnp.einsum("...l,...lo->...o", values, rows)
    return y if b is None else y + b


@register_op("ScatterColumns")
def scatter_columns(terms: jax.Array, values: jax.Array, *, width: int) -> jax.Array:
    """The dense (rows, width) matrix: each value added at its term's column (padding adds 0)."""

    def one(t: jax.Array, v: jax.Array) -> jax.Array:
        return jnp.zeros((width,), v.dtype).at[t].add(v)

    fn: Callable[[jax.Array, jax.Array], jax.Array] = one
    for _ in range(terms.ndim - 1):
        fn = jax.vmap(fn)
    return fn(terms, values)
