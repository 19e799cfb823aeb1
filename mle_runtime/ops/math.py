"""Elementwise, reduction and shape ops. Feature axes are always the last axis, so every op works on
a batch ``(n, f)`` and, under ``jax.vmap``, on a single row ``(f,)``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op


def runtime_dtype(name: str) -> jnp.dtype:
    """A framework's dtype name ("float64", "int64", "bool" ...) as the runtime computes in it: every float
    is the precision's float, every integer int32."""
    if name == "bool":
        return jnp.dtype(bool)
    if name.startswith(("int", "uint")):
        return jnp.dtype(jnp.int32)
    return jnp.result_type(float)


@register_op("Add")
def add(a: jax.Array, b: jax.Array) -> jax.Array:
    """a + b, broadcasting."""
    return a + b


@register_op("Sub")
def sub(a: jax.Array, b: jax.Array) -> jax.Array:
    """a - b, broadcasting."""
    return a - b


@register_op("Mul")
def mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a * b, broadcasting, rounded before any op that adds to it (``rounded``)."""
    return rounded(a * b)


def divide(a: Any, b: Any) -> jax.Array:
    """a / b correctly rounded in every element, as numpy divides. XLA rewrites a division by a broadcast
    divisor (a per-feature scale, a column of row sums, a constant) into a product with the divisor's
    reciprocal, 1 ulp off for about a third of the quotients in float32 and float64 alike (measured) —
    enough to move a scaled value across a tree's threshold, which scikit-learn's own division leaves
    on the other side. A divisor of another shape than the quotient is broadcast behind an optimization
    barrier, which XLA does not see through (a scaler before a dot: 0-10% slower, measured)."""
    dtype = jnp.result_type(a, b)
    shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
    if jnp.shape(b) != shape:
        b = jax.lax.optimization_barrier(jnp.broadcast_to(jnp.asarray(b, dtype), shape))
    return jnp.asarray(a, dtype) / b


def deviations(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """x less its mean over ``axes``, the mean taken about each group's first value: a group of equal
    values deviates by exactly 0, as in ATen's Welford moments. (A plain mean of 24 equal values rounds,
    and a norm's 1 / sqrt(eps) scales that rounding: a layer norm was 4e-5 of its output off where
    torch's is exact.)"""
    first = x[tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))]
    shifted = x - first
    return shifted - jnp.mean(shifted, axis=axes, keepdims=True)


def rounded(product: jax.Array) -> jax.Array:
    """``product`` as it is, kept from being fused into a following addition: XLA's CPU backend contracts
    a multiply and an add into one fused multiply-add, which skips the product's rounding (a quarter of
    the results 1 ulp off, measured), where numpy and scikit-learn round it (MinMaxScaler's x * scale +
    min, a spline's or an interpolation's slope * offset + start). A select on the product's NaN-ness,
    between two arms that are not constants (NaN stays NaN), stands between them: LLVM moves an add into
    a select with a constant arm and contracts it there; an optimization barrier is removed before XLA
    fuses, and a no-op reduce_precision or bitcast pair is simplified away (all measured)."""
    return jnp.where(jnp.isnan(product), -product, product)


def mean(x: jax.Array, axis: int) -> jax.Array:
    """The mean along ``axis`` as numpy forms it: the sum divided by the count (``divide``; XLA would
    multiply by the count's reciprocal)."""
    return divide(jnp.sum(x, axis=axis), x.shape[axis])


@register_op("Div")
def div(a: jax.Array, b: jax.Array) -> jax.Array:
    """a / b, broadcasting, correctly rounded (``divide``)."""
    return divide(a, b)


@register_op("Exp")
def exp(x: jax.Array) -> jax.Array:
    """e ** x."""
    return jnp.exp(x)


@register_op("Sigmoid")
def sigmoid(x: jax.Array) -> jax.Array:
    """1 / (1 + e ** -x)."""
    return jax.nn.sigmoid(x)


@register_op("Tanh")
def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent."""
    return jnp.tanh(x)


@register_op("Relu")
def relu(x: jax.Array) -> jax.Array:
    """max(x, 0)."""
    return jnp.maximum(x, 0)


@register_op("Softmax")
def softmax(x: jax.Array) -> jax.Array:
    """Softmax over the last axis."""
    return jax.nn.softmax(x, axis=-1)


@register_op("LogSoftmax")
def log_softmax(x: jax.Array) -> jax.Array:
    """The log of the softmax over the last axis, computed from x: finite where the softmax underflows to 0
    (naive Bayes' and discriminant analysis' ``predict_log_proba``)."""
    return jax.nn.log_softmax(x, axis=-1)


@register_op("LogProbability")
def log_probability(p: jax.Array) -> jax.Array:
    """log(p), a probability of 0 read as the smallest normal number of p's dtype (-708.4 in float64), as
    LinearDiscriminantAnalysis.predict_log_proba does. XLA on CPU flushes subnormal numbers to 0, so a
    probability below 2.2e-308, which scikit-learn keeps as a subnormal (log down to -745), gives -708.4."""
    return jnp.log(jnp.where(p == 0, jnp.finfo(p.dtype).smallest_normal, p))


@register_op("LogMeanExp")
def log_mean_exp(*xs: jax.Array) -> jax.Array:
    """log(mean(exp(x) for x in xs)), from the logs: the mean of several models' probabilities given their
    log probabilities, finite where each underflows (BaggingClassifier.predict_log_proba)."""
    return jax.nn.logsumexp(jnp.stack(xs), axis=0) - jnp.log(float(len(xs)))


@register_op("Clip")
def clip(x: jax.Array, *, low: float, high: float) -> jax.Array:
    """x clipped to [low, high]."""
    return jnp.clip(x, low, high)


@register_op("SqueezeLast")
def squeeze_last(x: jax.Array) -> jax.Array:
    """Drop a last axis of size 1: (n, 1) -> (n,)."""
    return x[..., 0]


@register_op("Concat")
def concat(*xs: jax.Array) -> jax.Array:
    """Concatenate along the last axis."""
    return jnp.concatenate(xs, axis=-1)


@register_op("ConstantRows")
def constant_rows(x: jax.Array, value: jax.Array) -> jax.Array:
    """``value`` repeated for each row of x, (rows, *value.shape); x's values are not read."""
    return jnp.broadcast_to(value, (x.shape[0], *value.shape))


@register_op("TakeColumns")
def take_columns(x: jax.Array, index: jax.Array) -> jax.Array:
    """x[..., index]."""
    return jnp.take(x, index, axis=-1)


@register_op("ArgMax")
def argmax(x: jax.Array) -> jax.Array:
    """Index of the largest value on the last axis (first on ties, as numpy), int32."""
    return jnp.argmax(x, axis=-1).astype(jnp.int32)


@register_op("IsPositive")
def is_positive(x: jax.Array, *, or_zero: bool = False) -> jax.Array:
    """1 where x > 0 (x >= 0 with ``or_zero``) else 0, int32: the class index of a binary decision score."""
    return (x >= 0 if or_zero else x > 0).astype(jnp.int32)


@register_op("Identity")
def identity(x: jax.Array) -> jax.Array:
    """x unchanged."""
    return x


@register_op("Float32Values")
def float32_values(x: jax.Array) -> jax.Array:
    """x's values rounded to float32, in x's dtype: what a model that casts its input to float32 reads."""
    return x.astype(jnp.float32).astype(x.dtype)


@register_op("Cast")
def cast(x: jax.Array, *, dtype: str) -> jax.Array:
    """x as ``dtype``: "float" (the runtime's float precision) or "int32"."""
    if dtype == "int32":
        return x.astype(jnp.int32)
    if dtype == "float":
        return x.astype(jnp.result_type(float))
    raise ValueError(f"Cast: dtype must be 'float' or 'int32', got {dtype!r}")


def pair(first: jax.Array, second: jax.Array) -> jax.Array:
    """``jnp.stack([first, second], axis=-1)``, built as a select over a broadcast: XLA on CPU fuses that
    into one loop, where a concatenation into a last axis of 2 runs ~8x slower (1M rows: 0.13 ms vs 1.0 ms)."""
    is_first = jnp.arange(2) == 0
    return jnp.where(is_first, first[..., None], second[..., None])


@register_op("ProbaPair")
def proba_pair(p: jax.Array) -> jax.Array:
    """[1 - p, p]: two class probabilities from the second class's, computed as XGBoost computes them."""
    return pair(1.0 - p, p)


@register_op("SegmentArgMax")
def segment_arg_max(x: jax.Array, *, sizes: list[int]) -> jax.Array:
    """(n, len(sizes)) int32: for consecutive column blocks of the given sizes, the index of the largest
    value within each block (first on ties): a multi-output classifier's labels."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return jnp.stack(
        [jnp.argmax(x[..., a : a + w], axis=-1).astype(jnp.int32) for a, w in zip(starts, sizes, strict=True)],
        axis=-1,
    )


@register_op("DequantizeInt8")
def dequantize_int8(q: jax.Array, scale: jax.Array, zero_point: jax.Array, *, axis: int = 0) -> jax.Array:
    """int8 weights widened: (q - zero_point) * scale, the scales and zero points shaped to broadcast
    against q (one per output channel); in files written before they were, one per slice of ``axis``."""
    if scale.ndim != q.ndim:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (q.astype(scale.dtype) - zero_point) * scale
