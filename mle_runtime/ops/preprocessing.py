"""Feature transforms of scikit-learn's preprocessing and imputation modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op


def _is_missing(x: jax.Array, missing: float | str) -> jax.Array:
    # JSON has no NaN, so a NaN marker travels as the string "nan".
    return jnp.isnan(x) if isinstance(missing, str) else jnp.equal(x, missing)


@register_op("Normalize")
def normalize(x: jax.Array, *, norm: str) -> jax.Array:
    """Rows scaled to unit l1, l2 or max norm; a zero row stays zero."""
    if norm == "l1":
        n = jnp.sum(jnp.abs(x), axis=-1, keepdims=True)
    elif norm == "l2":
        n = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    elif norm == "max":
        n = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    else:
        raise ValueError(f"Normalize: unknown norm {norm!r}")
    return x / jnp.where(n == 0, 1.0, n)


@register_op("Binarize")
def binarize(x: jax.Array, *, threshold: float) -> jax.Array:
    """1 where x > threshold else 0, in x's dtype."""
    return (x > threshold).astype(x.dtype)


@register_op("Impute")
def impute(x: jax.Array, fill: jax.Array, *, missing: float | str) -> jax.Array:
    """Missing entries (NaN or a marker value) replaced by the per-column fill values."""
    return jnp.where(_is_missing(x, missing), fill, x)


@register_op("IsMissing")
def is_missing(x: jax.Array, *, missing: float | str) -> jax.Array:
    """1 where an entry is missing else 0, in x's dtype."""
    return _is_missing(x, missing).astype(x.dtype)


@register_op("ColumnProducts")
def column_products(x: jax.Array, index: jax.Array) -> jax.Array:
    """out[..., j] = prod_k x1[..., index[j, k]] with x1 = [x, 1]: polynomial features, the padding
    index pointing at the appended column of ones."""
    ones = jnp.ones((*x.shape[:-1], 1), x.dtype)
    return jnp.prod(jnp.take(jnp.concatenate([x, ones], axis=-1), index, axis=-1), axis=-1)


@register_op("CategoryOneHot")
def category_one_hot(x: jax.Array, categories: jax.Array, *, column: int) -> jax.Array:
    """(rows, categories) floats: 1 where column ``column`` of x equals the category (a NaN category
    matches NaN); a value that is no category gives a row of zeros."""
    value = x[:, column][:, None]
    hit = (value == categories[None, :]) | (jnp.isnan(value) & jnp.isnan(categories)[None, :])
    return hit.astype(x.dtype)


@register_op("OrdinalCodes")
def ordinal_codes(
    x: jax.Array, categories: jax.Array, *, column: int, unknown: float | None, missing: float | None
) -> jax.Array:
    """(rows,) the position of column ``column`` of x among ``categories`` (OrdinalEncoder); NaN
    becomes ``missing`` and a value that is no category ``unknown`` (None stands for NaN: JSON has none)."""
    value = x[:, column][:, None]
    hit = value == categories[None, :]
    code = jnp.argmax(hit, axis=1).astype(x.dtype)
    nan = jnp.asarray(jnp.nan, x.dtype)
    code = jnp.where(jnp.any(hit, axis=1), code, nan if unknown is None else unknown)
    return jnp.where(jnp.isnan(value[:, 0]), nan if missing is None else missing, code)


@register_op("BinIndex")
def bin_index(x: jax.Array, edges: jax.Array) -> jax.Array:
    """(rows, features): per feature, how many of its inner bin edges (row f of ``edges``, padded with
    +inf) are <= the value — numpy's searchsorted(edges, x, side="right"), as KBinsDiscretizer bins."""
    return jnp.sum(x[:, :, None] >= edges[None, :, :], axis=-1).astype(x.dtype)


# The numpy ufuncs a FunctionTransformer may name, by name (anything else is arbitrary code).
UFUNCS = {
    "log": jnp.log,
    "log1p": jnp.log1p,
    "exp": jnp.exp,
    "expm1": jnp.expm1,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "absolute": jnp.abs,
    "square": jnp.square,
    "negative": jnp.negative,
    "sign": jnp.sign,
    "tanh": jnp.tanh,
    "arcsinh": jnp.arcsinh,
}


@register_op("Ufunc")
def ufunc(x: jax.Array, *, name: str) -> jax.Array:
    """numpy's elementwise function ``name`` (one of UFUNCS)."""
    if name not in UFUNCS:
        raise ValueError(f"Ufunc: {name!r} is not one of {sorted(UFUNCS)}")
    return UFUNCS[name](x)
