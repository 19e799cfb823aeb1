"""Feature transforms of scikit-learn's preprocessing and imputation modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op
from mle_runtime.ops.chunks import in_row_chunks
from mle_runtime.ops.math import divide, rounded


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
    return divide(x, jnp.where(n == 0, 1.0, n))


@register_op("SublinearTf")
def sublinear_tf(x: jax.Array) -> jax.Array:
    """1 + log(x) where x is non-zero, 0 where it is (TfidfTransformer(sublinear_tf=True), which takes
    the log of a sparse matrix's stored values only)."""
    nonzero = x != 0
    return jnp.where(nonzero, 1 + jnp.log(jnp.where(nonzero, x, 1)), 0).astype(x.dtype)


@register_op("Binarize")
def binarize(x: jax.Array, *, threshold: float) -> jax.Array:
    """1 where x > threshold else 0, in x's dtype."""
    return (x > threshold).astype(x.dtype)


@register_op("PowerTransform")
def power_transform(
    x: jax.Array, lambdas: jax.Array, *, method: str, log_features: list[bool], log_negative: list[bool]
) -> jax.Array:
    """Each feature's Yeo-Johnson or Box-Cox transform with its lambda, as scipy computes them:
    expm1(l * log1p(x)) / l for x >= 0 and -expm1((2 - l) * log1p(-x)) / (2 - l) below (Yeo-Johnson),
    expm1(l * log(x)) / l (Box-Cox); ``log_features`` marks the lambdas scipy takes for 0 (then log1p(x),
    log(x)), ``log_negative`` the Yeo-Johnson ones it takes for 2 (then -log1p(-x)). NaN stays NaN."""
    log = jnp.asarray(log_features)
    safe = jnp.where(log, 1, lambdas).astype(x.dtype)
    if method == "box-cox":
        return jnp.where(log, jnp.log(x), divide(jnp.expm1(safe * jnp.log(x)), safe))
    above = jnp.where(log, jnp.log1p(x), divide(jnp.expm1(safe * jnp.log1p(x)), safe))
    two = jnp.asarray(log_negative)
    rest = jnp.where(two, 1, 2 - lambdas).astype(x.dtype)
    below = jnp.where(two, -jnp.log1p(-x), divide(-jnp.expm1(rest * jnp.log1p(-x)), rest))
    return jnp.where(x >= 0, above, below)


@register_op("PowerTransformInverse")
def power_transform_inverse(
    x: jax.Array, lambdas: jax.Array, *, method: str, log_features: list[bool], log_negative: list[bool]
) -> jax.Array:
    """PowerTransformer.inverse_transform per feature, as scikit-learn and scipy compute it: Yeo-Johnson
    (x l + 1)^(1/l) - 1 for x >= 0 (exp(x) - 1 where ``log_features``: l within eps of 0) and
    1 - (-(2 - l) x + 1)^(1/(2 - l)) below (1 - exp(-x) where ``log_negative``: l within eps of 2);
    Box-Cox exp(log1p(l x) / l) (exp(x) where ``log_features``: l == 0). NaN where the power has none."""
    log = jnp.asarray(log_features)
    safe = jnp.where(log, 1, lambdas).astype(x.dtype)
    if method == "box-cox":
        return jnp.where(log, jnp.exp(x), jnp.exp(jnp.log1p(safe * x) / safe))
    above = jnp.where(log, jnp.exp(x) - 1, jnp.power(x * safe + 1, 1 / safe) - 1)
    two = jnp.asarray(log_negative)
    rest = jnp.where(two, 1, 2 - lambdas).astype(x.dtype)
    below = jnp.where(two, 1 - jnp.exp(-x), 1 - jnp.power(-rest * x + 1, 1 / rest))
    return jnp.where(x >= 0, above, below)


@register_op("QuantileInverse")
def quantile_inverse(x: jax.Array, quantiles: jax.Array, references: jax.Array, *, normal: bool) -> jax.Array:
    """QuantileTransformer.inverse_transform: each feature's value (through the normal CDF for a normal
    output) interpolated from the references back to its quantiles (n_quantiles, features); the top
    quantile at 1 and the bottom one at 0 (within 1e-7 of them for a normal output). NaN stays NaN."""
    t = jax.scipy.special.ndtr(x) if normal else x

    def column(t: jax.Array, q: jax.Array) -> jax.Array:
        y = _interp(t, references, q)
        y = jnp.where(t + 1e-7 > 1 if normal else t == 1, q[-1], y)
        y = jnp.where(t - 1e-7 < 0 if normal else t == 0, q[0], y)
        return jnp.where(jnp.isnan(t), t, y).astype(x.dtype)

    return jax.vmap(column, in_axes=(1, 1), out_axes=1)(t, quantiles)


def _interp(t: jax.Array, xp: jax.Array, fp: jax.Array) -> jax.Array:
    """numpy's interp of one column: the last knot at or below t, its value where t sits on it, the line
    to the next knot otherwise (from the next knot's end where that gives NaN), the end values beyond."""
    n = xp.shape[0]
    j = jnp.clip(jnp.searchsorted(xp, t, side="right") - 1, 0, n - 1)
    k = jnp.minimum(j + 1, n - 1)
    slope = (fp[k] - fp[j]) / (xp[k] - xp[j])
    y = rounded(slope * (t - xp[j])) + fp[j]
    y = jnp.where(jnp.isnan(y), rounded(slope * (t - xp[k])) + fp[k], y)
    y = jnp.where(jnp.isnan(y) & (fp[j] == fp[k]), fp[j], y)
    y = jnp.where((xp[j] == t) | (j == n - 1), fp[j], y)
    return jnp.where(t < xp[0], fp[0], jnp.where(t > xp[-1], fp[-1], y))


@register_op("QuantileTransform", round_down=("top", "negated_bottom"))
def quantile_transform(
    x: jax.Array,
    quantiles: jax.Array,
    references: jax.Array,
    top: jax.Array,
    negated_bottom: jax.Array,
    *,
    normal: bool,
    clip: list[float],
) -> jax.Array:
    """QuantileTransformer: each feature's value interpolated from its quantiles (n_quantiles, features)
    to the references, as the mean of numpy's interp upwards and downwards (repeated quantiles); 1 above
    ``top`` and 0 below -``negated_bottom`` (the end quantiles, or within 1e-7 of them for a normal
    output; rounded down to float32 in float32 precision, so that a float32 value compares as its float64
    self does); then, for a normal output, the normal quantile function clipped to ``clip``."""
    down_xp, down_fp = -quantiles[::-1], -references[::-1]

    def column(t: jax.Array, q: jax.Array, dq: jax.Array, hi: jax.Array, neg_lo: jax.Array) -> jax.Array:
        y = 0.5 * (_interp(t, q, references) - _interp(-t, dq, down_fp))
        y = jnp.where(t == q[-1] if not normal else t > hi, 1.0, y)
        y = jnp.where(t == q[0] if not normal else -t > neg_lo, 0.0, y)
        return jnp.where(jnp.isnan(t), t, y).astype(x.dtype)

    y = jax.vmap(column, in_axes=(1, 1, 1, 0, 0), out_axes=1)(x, quantiles, down_xp, top, negated_bottom)
    if normal:
        y = jnp.clip(jax.scipy.special.ndtri(y), clip[0], clip[1])
    return y


@register_op("TargetEncode")
def target_encode(x: jax.Array, *tables: jax.Array, missing_category: list[bool]) -> jax.Array:
    """TargetEncoder, features side by side, (rows, features * classes). Per feature three tables: its
    sorted known categories, their encodings (categories, classes) with the missing-value category's
    last when training saw one, and the target mean (classes,): a value takes its category's encoding,
    a missing value the missing-value category's where there is one, anything else the target mean."""
    out = []
    for i, (known, encodings, mean) in enumerate(zip(tables[0::3], tables[1::3], tables[2::3], strict=True)):
        value, known = x[:, i], known.astype(x.dtype)
        position = jnp.clip(jnp.searchsorted(known, value), 0, known.shape[0] - 1)
        y = jnp.where((known[position] == value)[:, None], encodings[position], mean[None, :])
        if missing_category[i]:
            y = jnp.where(jnp.isnan(value)[:, None], encodings[-1][None, :], y)
        out.append(y)
    return jnp.concatenate(out, axis=1).astype(x.dtype)


KNN_IMPUTE_BLOCK_ROWS = 256


def _nan_euclidean(x: jax.Array, train: jax.Array, n_features: int) -> jax.Array:
    """scikit-learn's nan_euclidean_distances: the squared distance over the coordinates both rows have,
    scaled by features / common coordinates, NaN where there are none. In float64 formed as scikit-learn
    forms it (euclidean_distances' |x|^2 - 2 x.t + |t|^2, less the terms of the other's missing ones);
    in float32 summed from the differences, a feature at a time: the expanded form's cancellation in
    float32 moved a distance of 4.5e-4 to 1.2e-3, and inverse-distance weights with it."""
    missing_x, missing_t = jnp.isnan(x), jnp.isnan(train)
    x0, t0 = jnp.where(missing_x, 0, x), jnp.where(missing_t, 0, train)
    common = jnp.matmul((~missing_x).astype(x.dtype), (~missing_t).T.astype(x.dtype))
    if x.dtype == jnp.float64:
        dot = jnp.matmul(x0, t0.T, precision=jax.lax.Precision.HIGHEST)
        sq = jnp.maximum(-2 * dot + jnp.sum(x0 * x0, axis=1)[:, None] + jnp.sum(t0 * t0, axis=1)[None, :], 0)
        sq = sq - jnp.matmul(x0 * x0, missing_t.T.astype(x.dtype)) - jnp.matmul(missing_x.astype(x.dtype), (t0 * t0).T)
    else:
        sq = jnp.zeros(common.shape, x.dtype)
        for f in range(n_features):
            d = x0[:, f][:, None] - t0[:, f][None, :]
            sq = sq + jnp.where(missing_x[:, f][:, None] | missing_t[:, f][None, :], 0, d * d)
    sq = jnp.maximum(sq, 0) / jnp.maximum(common, 1) * n_features
    return jnp.sqrt(jnp.where(common == 0, jnp.nan, sq))


@register_op("KNNImpute")
def knn_impute(
    x: jax.Array, train: jax.Array, column_means: jax.Array, *, k: int, weights: str, donors: list[int]
) -> jax.Array:
    """KNNImputer with NaN as the missing value: each missing entry of column c is the (uniform or
    inverse-distance) mean of column c over the k nearest training rows that have it (``donors[c]`` of
    them; fewer when there are fewer), by nan-euclidean distance; where no such row shares a coordinate
    with the row, the column's training mean. Columns with no value in training come out 0. Rows go
    through in blocks."""
    n_features = x.shape[1]
    missing_train = jnp.isnan(train)

    def block(xb: jax.Array) -> jax.Array:
        distances = _nan_euclidean(xb, train, n_features)
        columns = []
        for c in range(n_features):
            if donors[c] == 0:
                columns.append(jnp.zeros(xb.shape[0], xb.dtype))
                continue
            key = jnp.where(missing_train[:, c][None, :] | jnp.isnan(distances), jnp.inf, distances)
            negated, index = jax.lax.top_k(-key, min(k, donors[c]))
            nearest, values = -negated, train[:, c][index]
            if weights == "uniform":
                w = jnp.isfinite(nearest).astype(xb.dtype)
            else:  # 1 / distance; a row at distance 0 takes the mean of the donors at 0
                zero = nearest == 0
                w = jnp.where(zero.any(axis=1, keepdims=True), zero, jnp.where(jnp.isfinite(nearest), 1 / nearest, 0))
                w = w.astype(xb.dtype)
            total = jnp.sum(w, axis=1)
            mean = jnp.sum(jnp.where(w > 0, w * values, 0), axis=1) / jnp.where(total > 0, total, 1)
            value = jnp.where(total > 0, mean, column_means[c])
            columns.append(jnp.where(jnp.isnan(xb[:, c]), value, xb[:, c]))
        return jnp.stack(columns, axis=1)

    return in_row_chunks(x, block, KNN_IMPUTE_BLOCK_ROWS)


@register_op("NonPositiveRows")
def non_positive_rows(x: jax.Array) -> jax.Array:
    """(rows,) 1 where some entry is zero or negative (NaN is neither), else 0."""
    return jnp.any(x <= 0, axis=-1).astype(jnp.int32)


@register_op("Impute")
def impute(x: jax.Array, fill: jax.Array, *, missing: float | str) -> jax.Array:
    """Missing entries (NaN or a marker value) replaced by the per-column fill values."""
    return jnp.where(_is_missing(x, missing), fill, x)


@register_op("ReplaceColumn")
def replace_column(x: jax.Array, values: jax.Array, flags: jax.Array, *, column: int) -> jax.Array:
    """x with its column ``column`` replaced by ``values`` (rows,) in the rows where ``flags`` is not 0."""
    return x.at[:, column].set(jnp.where(flags != 0, values.astype(x.dtype), x[:, column]))


@register_op("IsMissing")
def is_missing(x: jax.Array, *, missing: float | str) -> jax.Array:
    """1 where an entry is missing else 0, in x's dtype."""
    return _is_missing(x, missing).astype(x.dtype)


@register_op("ColumnProducts")
def column_products(x: jax.Array, index: jax.Array) -> jax.Array:
    """out[..., j] = prod_k x1[..., index[j, k]] with x1 = [x, 1]: polynomial features, the padding
    index pointing at the appended column of ones. Multiplied in scikit-learn's order: the last two
    factors first, then each earlier one (its terms of degree d are those of degree d - 1 times a lower
    feature), so that every product rounds as there."""
    ones = jnp.ones((*x.shape[:-1], 1), x.dtype)
    factors = jnp.take(jnp.concatenate([x, ones], axis=-1), index, axis=-1)
    out = factors[..., -1]
    for k in range(index.shape[1] - 2, -1, -1):
        out = out * factors[..., k]
    return rounded(out)  # (a scaler after it subtracts its mean)


@register_op("CategoryOneHot")
def category_one_hot(x: jax.Array, categories: jax.Array, *, column: int) -> jax.Array:
    """(rows, categories) floats: 1 where column ``column`` of x equals the category (a NaN category
    matches NaN); a value that is no category gives a row of zeros."""
    value = x[:, column][:, None]
    hit = (value == categories[None, :]) | (jnp.isnan(value) & jnp.isnan(categories)[None, :])
    return hit.astype(x.dtype)


@register_op("OrdinalCodes")
def ordinal_codes(
    x: jax.Array,
    categories: jax.Array,
    codes: jax.Array | None = None,
    *,
    column: int,
    unknown: float | None,
    missing: float | None,
) -> jax.Array:
    """(rows,) the position of column ``column`` of x among ``categories`` (OrdinalEncoder), or, given
    ``codes``, the code of that position (infrequent categories share one); NaN becomes ``missing`` and
    a value that is no category ``unknown`` (None stands for NaN: JSON has none)."""
    value = x[:, column][:, None]
    hit = value == categories[None, :]
    position = jnp.argmax(hit, axis=1)
    code = (position if codes is None else codes[position]).astype(x.dtype)
    nan = jnp.asarray(jnp.nan, x.dtype)
    code = jnp.where(jnp.any(hit, axis=1), code, nan if unknown is None else unknown)
    return jnp.where(jnp.isnan(value[:, 0]), nan if missing is None else missing, code)


@register_op("BinIndex")
def bin_index(x: jax.Array, edges: jax.Array) -> jax.Array:
    """(rows, features): per feature, how many of its inner bin edges (row f of ``edges``, padded with
    +inf) are <= the value — numpy's searchsorted(edges, x, side="right"), as KBinsDiscretizer bins."""
    return jnp.sum(x[:, :, None] >= edges[None, :, :], axis=-1).astype(x.dtype)


@register_op("BinIndex", version=2, round_down=("thresholds",))
def bin_index_below(x: jax.Array, thresholds: jax.Array) -> jax.Array:
    """(rows, features): per feature, how many of its thresholds (row f of ``thresholds``, padded with
    +inf) lie below the value. A threshold is the float64 just below an inner bin edge, so in float64 this
    is version 1's count of edges <= x; stored so, the split ``x <= t`` of a tree, it narrows to float32 as
    split thresholds do (rounded down, and float64 inputs corrected near them: narrowing.py), where edges
    rounded to nearest mis-binned values within a float32 rounding of an edge."""
    return jnp.sum(x[:, :, None] > thresholds[None, :, :], axis=-1).astype(x.dtype)


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
    "cos": jnp.cos,
    "sin": jnp.sin,
}


@register_op("Ufunc")
def ufunc(x: jax.Array, *, name: str) -> jax.Array:
    """numpy's elementwise function ``name`` (one of UFUNCS)."""
    if name not in UFUNCS:
        raise ValueError(f"Ufunc: {name!r} is not one of {sorted(UFUNCS)}")
    return UFUNCS[name](x)


@register_op("BSpline")
def b_spline(
    x: jax.Array, knots: jax.Array, coef: jax.Array, *, degree: int, periodic: bool, missing: float | None
) -> jax.Array:
    """(rows, features * splines): for each feature f, scipy's ``BSpline(knots[f], coef[f], degree)`` at
    x[:, f], the end pieces extrapolating, step for step as scipy computes it (its knot interval, de Boor's
    recursion, then the sum over the degree + 1 non-zero basis functions in order). ``periodic`` first maps
    x into the base interval (SplineTransformer's periodic extrapolation); a NaN x gives ``missing``
    (None: NaN) in every column of its feature."""
    k, n = degree, knots.shape[1] - degree - 1
    value = x
    if periodic:
        start, period = knots[:, k], knots[:, n] - knots[:, k]
        wrapped = start + jnp.remainder(x - start, jnp.where(period > 0, period, 1))
        value = jnp.where(period > 0, wrapped, 0)  # a constant feature (one value in training) maps to 0
    interval = jnp.clip(jnp.sum(value[:, :, None] >= knots[None], axis=-1), k + 1, n) - 1
    feature = jnp.arange(knots.shape[0])[None, :]

    def knot(i: jax.Array) -> jax.Array:
        return knots[feature, i]

    h = [jnp.ones_like(value)]
    for j in range(1, k + 1):
        previous, h = h, [jnp.zeros_like(value)] * (j + 1)
        for m in range(1, j + 1):
            right, left = knot(interval + m), knot(interval + m - j)
            same = right == left  # scipy skips the term (its weight is 0)
            w = jnp.where(same, 0, previous[m - 1] / jnp.where(same, 1, right - left))
            h[m - 1] = h[m - 1] + rounded(w * (right - value))
            h[m] = rounded(w * (value - left))  # (the next m adds to it)
    out = jnp.zeros((*value.shape, coef.shape[2]), value.dtype)
    for a in range(k + 1):
        out = out + rounded(coef[feature, interval - k + a] * h[a][..., None])
    fill = jnp.asarray(jnp.nan if missing is None else missing, out.dtype)
    out = jnp.where(jnp.isnan(x)[..., None], fill, out)
    return out.reshape(x.shape[0], -1)


@register_op("SplineEnds")
def spline_ends(
    basis: jax.Array,
    x: jax.Array,
    low: jax.Array,
    high: jax.Array,
    below: jax.Array,
    below_slope: jax.Array,
    above: jax.Array,
    above_slope: jax.Array,
    *,
    linear: bool,
) -> jax.Array:
    """SplineTransformer's constant or linear extrapolation: per feature f, where x[:, f] lies below
    ``low[f]`` or above ``high[f]``, ``below[f]`` (plus ``(x - low[f]) * below_slope[f]`` when ``linear``),
    or the same with ``above``, in place of the spline basis; NaN gives zeros."""
    b3 = basis.reshape(x.shape[0], x.shape[1], below.shape[1])
    v, low, high = x[..., None], low[None, :, None], high[None, :, None]
    lo = below + (v - low) * below_slope if linear else jnp.broadcast_to(below, b3.shape)
    hi = above + (v - high) * above_slope if linear else jnp.broadcast_to(above, b3.shape)
    inside = jnp.where((low <= v) & (v <= high), b3, 0)
    return jnp.where(v < low, lo, jnp.where(v > high, hi, inside)).reshape(basis.shape)


@register_op("FailedCheck")
def failed_check(condition: jax.Array, rows: jax.Array) -> jax.Array:
    """(rows,) 1 on every row of the batch ``rows`` (its first axis) when the scalar ``condition`` is
    false: a check the source framework makes of a whole batch (it raises for all of it)."""
    return jnp.broadcast_to(jnp.logical_not(condition.astype(bool)), rows.shape[:1]).astype(jnp.int32)


@register_op("IndexOutOfRange")
def index_out_of_range(ids: jax.Array, *rows: jax.Array, size: int) -> jax.Array:
    """(rows,) 1 where some id of the row (any axis after the first), as an integer, lies outside
    0 .. size - 1: an embedding lookup the source framework refuses. With ``rows``, ids not laid out by
    row (an EmbeddingBag's, flattened): 1 on every row of ``rows`` (its first axis) when any id is."""
    whole = ids.astype(jnp.int32)
    outside = (whole < 0) | (whole >= size)
    if rows:
        return failed_check(jnp.logical_not(jnp.any(outside)), rows[0])
    return jnp.any(outside.reshape(outside.shape[0], -1), axis=1).astype(jnp.int32)


@register_op("OutsideRange")
def outside_range(x: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
    """(rows,) 1 where some feature f lies below ``low[f]`` or above ``high[f]`` (NaN does not), else 0."""
    return jnp.any((x < low) | (x > high), axis=1).astype(jnp.int32)
