"""PyTorch's core ATen ops (what ``torch.export`` leaves after ``run_decompositions()``), as jnp.

Each op is registered under its ATen name and overload ("aten.add.Tensor"; ".default" left out). Its
tensor arguments are the node's inputs in ATen's order (an absent optional tensor is a zero-size
tensor), its other arguments keyword attributes named as in ATen's schema. Layouts are PyTorch's
(NCHW); matrix products and convolutions run at full float32 precision (no TF32 on GPUs)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.ops import register_op, resize
from mle_runtime.ops.convolution import convolve
from mle_runtime.ops.math import deviations, divide, runtime_dtype

HIGHEST = jax.lax.Precision.HIGHEST
INT64_MAX = 2**63 - 1


def _present(t: jax.Array | None) -> bool:
    return t is not None and t.size > 0


def _dtype(name: str | None, like: jax.Array | None = None) -> jnp.dtype:
    """An ATen dtype name in the runtime's precision (``like``'s dtype when none is named)."""
    if name is None:
        return jnp.result_type(float) if like is None else like.dtype
    return runtime_dtype(name)


def _dims(dim: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    return tuple(d % ndim for d in ([dim] if isinstance(dim, int) else dim)) or tuple(range(ndim))


# -- shapes and copies -----------------------------------------------------------------------------


def _identity(x: jax.Array, **_: object) -> jax.Array:
    """x unchanged (a copy in PyTorch)."""
    return x


for _name in ("aten.clone", "aten.alias", "aten.detach", "aten.lift_fresh_copy", "aten.contiguous"):
    register_op(_name)(_identity)


@register_op("aten.view")
def view(x: jax.Array, *, size: list[int]) -> jax.Array:
    """x reshaped (one size may be -1)."""
    return jnp.reshape(x, size)


register_op("aten._unsafe_view")(view)


@register_op("aten.reshape")
def reshape(x: jax.Array, *, shape: list[int]) -> jax.Array:
    """x reshaped (one size may be -1)."""
    return jnp.reshape(x, shape)


@register_op("aten.expand")
def expand(x: jax.Array, *, size: list[int], implicit: bool = False) -> jax.Array:
    """x broadcast to ``size`` (-1 keeps a dimension)."""
    lead = len(size) - x.ndim
    shape = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(size)]
    return jnp.broadcast_to(x, shape)


@register_op("aten.permute")
def permute(x: jax.Array, *, dims: list[int]) -> jax.Array:
    """x with its axes reordered."""
    return jnp.transpose(x, dims)


@register_op("aten.t")
def t(x: jax.Array) -> jax.Array:
    """A matrix transposed."""
    return x.T


@register_op("aten.transpose.int")
def transpose(x: jax.Array, *, dim0: int, dim1: int) -> jax.Array:
    """x with two axes swapped."""
    return jnp.swapaxes(x, dim0, dim1)


@register_op("aten.unsqueeze")
def unsqueeze(x: jax.Array, *, dim: int) -> jax.Array:
    """x with a new axis of size 1 at ``dim``."""
    return jnp.expand_dims(x, dim % (x.ndim + 1))


@register_op("aten.squeeze.dims")
def squeeze_dims(x: jax.Array, *, dim: list[int]) -> jax.Array:
    """x without those of axes ``dim`` that have size 1."""
    return jnp.squeeze(x, tuple(d % x.ndim for d in dim if x.shape[d] == 1))


@register_op("aten.squeeze.dim")
def squeeze_dim(x: jax.Array, *, dim: int) -> jax.Array:
    """x without axis ``dim`` if it has size 1."""
    return squeeze_dims(x, dim=[dim])


@register_op("aten.select.int")
def select(x: jax.Array, *, dim: int, index: int) -> jax.Array:
    """x[..., index, ...] on axis ``dim``, the axis dropped."""
    return jnp.take(x, index % x.shape[dim], axis=dim)


@register_op("aten.slice.Tensor")
def slice_tensor(
    x: jax.Array, *, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1
) -> jax.Array:
    """x[start:end:step] on axis ``dim`` (ends beyond the axis clipped, as PyTorch's)."""
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, None if end is None or end >= INT64_MAX else end, step)  # Python's clipping
    return x[tuple(index)]


@register_op("aten.cat")
def cat(*tensors: jax.Array, dim: int = 0) -> jax.Array:
    """The tensors joined along ``dim`` (empty ones skipped, as PyTorch allows)."""
    kept = [t for t in tensors if t.size > 0 or t.ndim > 1]
    return jnp.concatenate(kept, axis=dim)


@register_op("aten.index.Tensor")
def index(x: jax.Array, *indices: jax.Array) -> jax.Array:
    """x[indices] with numpy's (and PyTorch's) advanced indexing; an absent index takes a whole axis."""
    return x[tuple(i.astype(jnp.int32) if _present(i) else slice(None) for i in indices)]


@register_op("aten.slice_scatter")
def slice_scatter(
    x: jax.Array, src: jax.Array, *, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1
) -> jax.Array:
    """x with x[start:end:step] on axis ``dim`` replaced by src."""
    where = [slice(None)] * x.ndim
    where[dim] = slice(start, None if end is None or end >= INT64_MAX else end, step)
    return x.at[tuple(where)].set(src.astype(x.dtype))


@register_op("aten.copy")
def copy(x: jax.Array, src: jax.Array, *, non_blocking: bool = False) -> jax.Array:
    """src broadcast to x's shape, in x's dtype (what copying src into x leaves there)."""
    return jnp.broadcast_to(src, x.shape).astype(x.dtype)


@register_op("aten.embedding_renorm")
def embedding_renorm(weight: jax.Array, indices: jax.Array, *, max_norm: float, norm_type: float = 2.0) -> jax.Array:
    """nn.Embedding(max_norm=...)'s lookup: the rows ``indices`` reads whose norm exceeds max_norm scaled
    by max_norm / (norm + 1e-7), as ATen's embedding_renorm does to them (in place, in PyTorch)."""
    if norm_type == 2:
        norm = jnp.sqrt(jnp.sum(weight * weight, axis=1))
    else:
        norm = jnp.sum(jnp.abs(weight) ** norm_type, axis=1) ** (1 / norm_type)
    read = jnp.zeros(weight.shape[0], bool).at[indices.reshape(-1).astype(jnp.int32)].set(True)
    scale = jnp.where(read & (norm > max_norm), max_norm / (norm + 1e-7), 1)
    return weight * scale[:, None].astype(weight.dtype)


@register_op("aten.embedding")
def embedding(weight: jax.Array, indices: jax.Array, *, padding_idx: int = -1, **_: object) -> jax.Array:
    """Rows of ``weight`` at ``indices`` (given as floats or ints)."""
    return jnp.take(weight, indices.astype(jnp.int32), axis=0)


@register_op("aten._embedding_bag")
def embedding_bag(
    weight: jax.Array,
    indices: jax.Array,
    offsets: jax.Array,
    per_sample_weights: jax.Array | None = None,
    *,
    mode: int = 0,
    include_last_offset: bool = False,
    padding_idx: int = -1,
    **_: object,
) -> jax.Array:
    """EmbeddingBag: bag b holds the rows of ``weight`` that ``indices`` names from offsets[b] up to the next
    offset, summed (mode 0; each times its per-sample weight where given), averaged (1) or their maximum
    (2); entries equal to ``padding_idx`` (when >= 0) are left out, and an empty bag gives zeros. The first
    of ATen's outputs."""
    index = indices.astype(jnp.int32)
    starts = offsets.astype(jnp.int32)
    bags = starts.shape[0] - (1 if include_last_offset else 0)
    bag_of = jnp.searchsorted(starts, jnp.arange(index.shape[0]), side="right") - 1  # (past the last bag: dropped)
    kept = index != padding_idx if padding_idx >= 0 else jnp.ones(index.shape, bool)
    rows = jnp.take(weight, index, axis=0)
    if per_sample_weights is not None and per_sample_weights.size:
        rows = rows * per_sample_weights[:, None].astype(rows.dtype)
    if mode == 2:
        largest = jax.ops.segment_max(jnp.where(kept[:, None], rows, -jnp.inf), bag_of, num_segments=bags)
        return jnp.where(jnp.isneginf(largest), 0, largest)
    sums = jax.ops.segment_sum(jnp.where(kept[:, None], rows, 0), bag_of, num_segments=bags)
    if mode == 0:
        return sums
    counts = jax.ops.segment_sum(kept.astype(rows.dtype), bag_of, num_segments=bags)
    return divide(sums, jnp.maximum(counts, 1)[:, None])


@register_op("aten.constant_pad_nd")
def constant_pad_nd(x: jax.Array, *, pad: list[int], value: float = 0.0) -> jax.Array:
    """x padded by ``value``: ``pad`` lists (before, after) pairs from the last axis backwards."""
    return jnp.pad(x, _pad_widths(x.ndim, pad), constant_values=value)


def _pad_widths(ndim: int, pad: list[int]) -> list[tuple[int, int]]:
    widths = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        widths[ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return widths


def _edge_pad(mode: str):  # type: ignore[no-untyped-def]
    def pad_fn(x: jax.Array, *, padding: list[int]) -> jax.Array:
        return jnp.pad(x, _pad_widths(x.ndim, padding), mode=mode)

    pad_fn.__doc__ = f"x padded in numpy's {mode!r} mode over its last len(padding) / 2 axes."
    return pad_fn


for _dims_count in (1, 2, 3):
    register_op(f"aten.reflection_pad{_dims_count}d")(_edge_pad("reflect"))
    register_op(f"aten.replication_pad{_dims_count}d")(_edge_pad("edge"))


# -- creation ----------------------------------------------------------------------------------------


@register_op("aten.full")
def full(*, size: list[int], fill_value: float, dtype: str | None = None, **_: object) -> jax.Array:
    """A tensor of ``size`` filled with ``fill_value``."""
    return jnp.full(size, fill_value, _dtype(dtype))


@register_op("aten.empty.memory_format")
def empty(*, size: list[int], dtype: str | None = None, **_: object) -> jax.Array:
    """A tensor of ``size`` (zeros: PyTorch leaves it unset, and the graph fills it before any read)."""
    return jnp.zeros(size, _dtype(dtype))


@register_op("aten.arange.start_step")
def arange(*, start: float, end: float, step: float = 1, dtype: str | None = None, **_: object) -> jax.Array:
    """start, start + step, ... below end."""
    integral = all(float(v).is_integer() for v in (start, end, step))
    kind = _dtype(dtype) if dtype is not None else (jnp.dtype(jnp.int32) if integral else jnp.result_type(float))
    return jnp.arange(start, end, step, dtype=kind)


@register_op("aten.full_like")
def full_like(x: jax.Array, *, fill_value: float, dtype: str | None = None, **_: object) -> jax.Array:
    """A tensor shaped like x filled with ``fill_value``."""
    return jnp.full(x.shape, fill_value, _dtype(dtype, x))


@register_op("aten.zeros_like")
def zeros_like(x: jax.Array, *, dtype: str | None = None, **_: object) -> jax.Array:
    """Zeros shaped like x."""
    return jnp.zeros(x.shape, _dtype(dtype, x))


@register_op("aten.ones_like")
def ones_like(x: jax.Array, *, dtype: str | None = None, **_: object) -> jax.Array:
    """Ones shaped like x."""
    return jnp.ones(x.shape, _dtype(dtype, x))


@register_op("aten.scalar_tensor")
def scalar_tensor(*, s: float, dtype: str | None = None, **_: object) -> jax.Array:
    """A 0-d tensor holding ``s``."""
    return jnp.asarray(s, _dtype(dtype))


@register_op("aten._to_copy")
def to_copy(x: jax.Array, *, dtype: str | None = None, **_: object) -> jax.Array:
    """x converted to ``dtype`` (floats stay in the runtime's precision)."""
    return x.astype(_dtype(dtype, x))


# -- elementwise --------------------------------------------------------------------------------------


@register_op("aten.add.Tensor")
def add(x: jax.Array, other: jax.Array, *, alpha: float = 1) -> jax.Array:
    """x + alpha * other."""
    return x + (other if alpha == 1 else alpha * other)


@register_op("aten.sub.Tensor")
def sub(x: jax.Array, other: jax.Array, *, alpha: float = 1) -> jax.Array:
    """x - alpha * other."""
    return x - (other if alpha == 1 else alpha * other)


@register_op("aten.add.Scalar")
def add_scalar(x: jax.Array, *, other: float, alpha: float = 1) -> jax.Array:
    """x + alpha * other."""
    return x + alpha * other


@register_op("aten.rsub.Scalar")
def rsub_scalar(x: jax.Array, *, other: float, alpha: float = 1) -> jax.Array:
    """other - alpha * x."""
    return other - (x if alpha == 1 else alpha * x)


@register_op("aten.mul.Scalar")
def mul_scalar(x: jax.Array, *, other: float) -> jax.Array:
    """x * other."""
    return x * other


@register_op("aten.div.Scalar")
def div_scalar(x: jax.Array, *, other: float) -> jax.Array:
    """x / other."""
    return x / other


@register_op("aten.div.Tensor_mode")
def div_mode(x: jax.Array, other: jax.Array, *, rounding_mode: str | None = None) -> jax.Array:
    """x / other, rounded toward zero ("trunc") or down ("floor") if asked."""
    q = x / other
    if rounding_mode == "trunc":
        return jnp.trunc(q)
    return jnp.floor(q) if rounding_mode == "floor" else q


@register_op("aten.pow.Tensor_Scalar")
def pow_scalar(x: jax.Array, *, exponent: float) -> jax.Array:
    """x ** exponent."""
    return x * x if exponent == 2 else jnp.power(x, exponent)


def _unary(name: str, fn: Callable[[jax.Array], jax.Array], doc: str) -> None:
    def op(x: jax.Array) -> jax.Array:
        return fn(x)

    op.__doc__ = doc
    register_op(name)(op)


for _name, _fn in {
    "neg": jnp.negative,
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
    "sqrt": jnp.sqrt,
    "rsqrt": jax.lax.rsqrt,
    "abs": jnp.abs,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "reciprocal": jnp.reciprocal,
    "sign": jnp.sign,
    "floor": jnp.floor,
    "ceil": jnp.ceil,
    "logical_not": jnp.logical_not,
    "exp2": jnp.exp2,
    "log2": jnp.log2,
    "log10": jnp.log10,
    "round": jnp.round,  # (half to even, as PyTorch)
    "trunc": jnp.trunc,
    "isnan": jnp.isnan,
    "isinf": jnp.isinf,
    "tan": jnp.tan,
    "atan": jnp.arctan,
    "asin": jnp.arcsin,
    "acos": jnp.arccos,
    "sinh": jnp.sinh,
    "cosh": jnp.cosh,
    "asinh": jnp.arcsinh,
    "acosh": jnp.arccosh,
    "atanh": jnp.arctanh,
    "erfinv": jax.scipy.special.erfinv,
    "erfc": jax.scipy.special.erfc,
    "lgamma": jax.scipy.special.gammaln,  # log |gamma(x)|, as torch.lgamma
    "i0": jax.scipy.special.i0,
    "special_i0e": jax.scipy.special.i0e,
    "special_i1": jax.scipy.special.i1,
    "special_i1e": jax.scipy.special.i1e,
    "special_modified_bessel_i0": jax.scipy.special.i0,  # (PyTorch's own Cephes series: within 6e-7 in float32)
    "special_modified_bessel_i1": jax.scipy.special.i1,
    "special_ndtri": jax.scipy.special.ndtri,
    "special_erfcx": jax.scipy.special.erfcx,  # exp(x ** 2) * erfc(x), without its overflow
}.items():
    _unary(f"aten.{_name}", _fn, f"PyTorch's elementwise {_name}.")


@register_op("aten.special_spherical_bessel_j0")
def spherical_bessel_j0(x: jax.Array) -> jax.Array:
    """sin(x) / x: 1 at 0, and 0 at an infinity, as PyTorch's."""
    safe = jnp.where(x == 0, jnp.ones_like(x), x)
    return jnp.where(x == 0, 1, jnp.where(jnp.isinf(x), 0, jnp.sin(safe) / safe)).astype(x.dtype)


@register_op("aten.digamma")
def digamma(x: jax.Array) -> jax.Array:
    """The digamma function; at 0 an infinity of the sign of -1/x, as PyTorch (JAX's: NaN)."""
    return jnp.where(x == 0, jnp.copysign(jnp.inf, -x).astype(x.dtype), jax.scipy.special.digamma(x))


@register_op("aten.polygamma")
def polygamma(x: jax.Array, *, n: int) -> jax.Array:
    """The n-th derivative of the digamma function (n = 0: digamma itself). At a pole (0, a negative
    integer) an infinity, where PyTorch's series gives a large finite number."""
    return digamma(x) if n == 0 else jax.scipy.special.polygamma(n, x)


@register_op("aten.rrelu_with_noise_functional")
def rrelu(x: jax.Array, noise: jax.Array, *, lower: float = 0.125, upper: float = 1 / 3, **_: object) -> jax.Array:
    """RReLU in eval mode: the leaky ReLU of the mean slope (the converter refuses training=True)."""
    return jnp.where(x >= 0, x, x * ((lower + upper) / 2))


@register_op("aten._trilinear")
def trilinear(
    i1: jax.Array,
    i2: jax.Array,
    i3: jax.Array,
    *,
    expand1: Sequence[int],
    expand2: Sequence[int],
    expand3: Sequence[int],
    sumdim: Sequence[int],
    **_: object,
) -> jax.Array:
    """The product of three tensors, each unsqueezed at its ``expand`` axes to one rank, summed over
    ``sumdim`` (nn.Bilinear's form), as one einsum: the full product is never made."""
    rank = i1.ndim + len(expand1)
    axes = "abcdefghijklmnopqrstuvwxyz"[:rank]
    subscripts = ["".join(a for d, a in enumerate(axes) if d not in set(e)) for e in (expand1, expand2, expand3)]
    out = "".join(a for d, a in enumerate(axes) if d not in set(sumdim))
    return jnp.einsum(f"{','.join(subscripts)}->{out}", i1, i2, i3, precision=HIGHEST)


@register_op("aten.gelu")
def gelu(x: jax.Array, *, approximate: str = "none") -> jax.Array:
    """GELU, exact (erf) or with the tanh approximation, as PyTorch computes them."""
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + jnp.tanh(inner))
    return 0.5 * x * (1 + jax.scipy.special.erf(x * (1 / math.sqrt(2))))


@register_op("aten.leaky_relu")
def leaky_relu(x: jax.Array, *, negative_slope: float = 0.01) -> jax.Array:
    """x where positive, else negative_slope * x."""
    return jnp.where(x > 0, x, x * negative_slope)


@register_op("aten.hardtanh")
def hardtanh(x: jax.Array, *, min_val: float = -1.0, max_val: float = 1.0) -> jax.Array:
    """x clipped to [min_val, max_val]."""
    return jnp.clip(x, min_val, max_val)


@register_op("aten.clamp")
def clamp(x: jax.Array, *, min: float | None = None, max: float | None = None) -> jax.Array:
    """x clipped to [min, max] (either may be absent)."""
    if min is not None:
        x = jnp.maximum(x, min)
    return x if max is None else jnp.minimum(x, max)


@register_op("aten.clamp.Tensor")
def clamp_tensor(x: jax.Array, *bounds: jax.Array) -> jax.Array:
    """x clipped to tensors ``min`` and ``max`` (an absent one given as an empty tensor)."""
    low, high = (bounds + (jnp.zeros((0,)),) * 2)[:2]
    if low.size:
        x = jnp.maximum(x, low)
    return jnp.minimum(x, high) if high.size else x


@register_op("aten.elu")
def elu(x: jax.Array, *, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0) -> jax.Array:
    """ELU as ATen's: scale * x where positive, else scale * alpha * (exp(input_scale * x) - 1) (CELU and
    SELU decompose to it)."""
    return scale * jnp.where(x > 0, x, alpha * jnp.expm1(input_scale * x))


@register_op("aten.fmod.Scalar")
def fmod_scalar(x: jax.Array, *, other: float) -> jax.Array:
    """The remainder of x / other with x's sign (C's fmod)."""
    return jnp.fmod(x, other)


@register_op("aten.remainder.Scalar")
def remainder_scalar(x: jax.Array, *, other: float) -> jax.Array:
    """The remainder of x / other with other's sign (Python's %)."""
    return jnp.remainder(x, other)


@register_op("aten.clamp_min")
def clamp_min(x: jax.Array, *, min: float) -> jax.Array:
    """max(x, min)."""
    return jnp.maximum(x, min)


def _binary(name: str, fn: Callable[[jax.Array, jax.Array], jax.Array], doc: str) -> None:
    def op(x: jax.Array, other: jax.Array) -> jax.Array:
        return fn(x, other)

    op.__doc__ = doc
    register_op(name)(op)


_BINARY: dict[str, tuple[Callable[[jax.Array, jax.Array], jax.Array], str]] = {
    "mul.Tensor": (jnp.multiply, "x * other."),
    "div.Tensor": (jnp.divide, "x / other."),
    "pow.Tensor_Tensor": (jnp.power, "x ** exponent."),
    "maximum": (jnp.maximum, "The elementwise larger of x and other (NaN propagates)."),
    "minimum": (jnp.minimum, "The elementwise smaller of x and other (NaN propagates)."),
    "logical_and": (jnp.logical_and, "x and other, elementwise."),
    "fmod.Tensor": (jnp.fmod, "The remainder of x / other with x's sign (C's fmod)."),
    "remainder.Tensor": (jnp.remainder, "The remainder of x / other with other's sign (Python's %)."),
    "atan2": (jnp.arctan2, "The angle of (other, x)."),
    "logical_or": (jnp.logical_or, "x or other, elementwise."),
    "copysign.Tensor": (jnp.copysign, "|x| with the sign of other."),
    "hypot": (jnp.hypot, "sqrt(x ** 2 + other ** 2) without overflow."),
    "nextafter": (jnp.nextafter, "The float after x towards other."),
    "special_zeta": (jax.scipy.special.zeta, "The Hurwitz zeta function of x at q = other."),
}
for _name, (_pair, _doc) in _BINARY.items():
    _binary(f"aten.{_name}", _pair, _doc)


@register_op("aten.where.self")
def where(condition: jax.Array, x: jax.Array, other: jax.Array) -> jax.Array:
    """x where condition, else other."""
    return jnp.where(condition.astype(bool), x, other)


def _compare(name: str, fn: Callable[[jax.Array, Any], jax.Array]) -> None:
    def tensor_op(x: jax.Array, other: jax.Array) -> jax.Array:
        return fn(x, other)

    def scalar_op(x: jax.Array, *, other: float) -> jax.Array:
        return fn(x, other)

    tensor_op.__doc__ = scalar_op.__doc__ = f"The elementwise comparison {name}, as booleans."
    register_op(f"aten.{name}.Tensor")(tensor_op)
    register_op(f"aten.{name}.Scalar")(scalar_op)


for _name, _test in {
    "eq": jnp.equal,
    "ne": jnp.not_equal,
    "gt": jnp.greater,
    "ge": jnp.greater_equal,
    "lt": jnp.less,
    "le": jnp.less_equal,
}.items():
    _compare(_name, _test)


# -- reductions ----------------------------------------------------------------------------------------


@register_op("aten.mean.dim")
def mean(x: jax.Array, *, dim: list[int] | None = None, keepdim: bool = False, dtype: str | None = None) -> jax.Array:
    """The mean over ``dim``."""
    return jnp.mean(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@register_op("aten.sum.dim_IntList")
def sum_dims(
    x: jax.Array, *, dim: list[int] | None = None, keepdim: bool = False, dtype: str | None = None
) -> jax.Array:
    """The sum over ``dim``."""
    return jnp.sum(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@register_op("aten.prod.dim_int")
def prod_dim(x: jax.Array, *, dim: int, keepdim: bool = False, dtype: str | None = None) -> jax.Array:
    """The product over ``dim``."""
    return jnp.prod(x, axis=dim, keepdims=keepdim)


@register_op("aten.prod")
def prod(x: jax.Array, *, dtype: str | None = None) -> jax.Array:
    """The product of every element."""
    return jnp.prod(x)


@register_op("aten.var.correction")
def var(
    x: jax.Array, *, dim: list[int] | None = None, correction: float | None = None, keepdim: bool = False
) -> jax.Array:
    """The variance over ``dim``, divided by n - ``correction`` (default 1, Bessel's)."""
    axes = _dims(dim, x.ndim)
    count = math.prod(x.shape[a] for a in axes) - (1 if correction is None else correction)
    deviation = deviations(x, axes)
    return jnp.sum(deviation * deviation, axis=axes, keepdims=keepdim) / count


@register_op("aten.std.correction")
def std(
    x: jax.Array, *, dim: list[int] | None = None, correction: float | None = None, keepdim: bool = False
) -> jax.Array:
    """The standard deviation over ``dim`` (as ``aten.var.correction``)."""
    return jnp.sqrt(var(x, dim=dim, correction=correction, keepdim=keepdim))


@register_op("aten.linalg_vector_norm")
def vector_norm(
    x: jax.Array, *, ord: float = 2, dim: list[int] | None = None, keepdim: bool = False, dtype: str | None = None
) -> jax.Array:
    """The ``ord``-norm over ``dim`` (all of x when None): F.normalize's denominator, among others."""
    axes, magnitude = _dims(dim, x.ndim), jnp.abs(x)
    if ord == math.inf:
        return jnp.max(magnitude, axis=axes, keepdims=keepdim)
    if ord == -math.inf:
        return jnp.min(magnitude, axis=axes, keepdims=keepdim)
    if ord == 0:
        return jnp.sum(x != 0, axis=axes, keepdims=keepdim).astype(x.dtype)
    if ord == 2:
        return jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=keepdim))
    return jnp.sum(magnitude**ord, axis=axes, keepdims=keepdim) ** (1.0 / ord)


@register_op("aten.amax")
def amax(x: jax.Array, *, dim: list[int] | None = None, keepdim: bool = False) -> jax.Array:
    """The largest value over ``dim``."""
    return jnp.max(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@register_op("aten.amin")
def amin(x: jax.Array, *, dim: list[int] | None = None, keepdim: bool = False) -> jax.Array:
    """The smallest value over ``dim``."""
    return jnp.min(x, axis=_dims(dim, x.ndim), keepdims=keepdim)


@register_op("aten.any.dim")
def any_dim(x: jax.Array, *, dim: int, keepdim: bool = False) -> jax.Array:
    """Whether any value over ``dim`` is true."""
    return jnp.any(x.astype(bool), axis=dim, keepdims=keepdim)


@register_op("aten.any.dims")
def any_dims(x: jax.Array, *, dim: list[int] | None = None, keepdim: bool = False) -> jax.Array:
    """Whether any value over ``dim`` (every axis when none) is true."""
    return jnp.any(x.astype(bool), axis=_dims(dim, x.ndim), keepdims=keepdim)


@register_op("aten.cumsum")
def cumsum(x: jax.Array, *, dim: int, dtype: str | None = None) -> jax.Array:
    """Running sums along ``dim``."""
    return jnp.cumsum(x, axis=dim)


@register_op("aten.cumprod")
def cumprod(x: jax.Array, *, dim: int, dtype: str | None = None) -> jax.Array:
    """Running products along ``dim``."""
    return jnp.cumprod(x, axis=dim)


@register_op("aten.var_mean.correction")
def var_mean(
    x: jax.Array, *, dim: list[int] | None = None, correction: float | None = None, keepdim: bool = False
) -> jax.Array:
    """The variance (the first of ATen's outputs; as ``aten.var.correction``)."""
    return var(x, dim=dim, correction=correction, keepdim=keepdim)


@register_op("aten.max.dim")
def max_dim(x: jax.Array, *, dim: int, keepdim: bool = False) -> jax.Array:
    """The largest values over ``dim`` (the first of ATen's outputs; NaN propagates)."""
    return jnp.max(x, axis=dim, keepdims=keepdim)


@register_op("aten.min.dim")
def min_dim(x: jax.Array, *, dim: int, keepdim: bool = False) -> jax.Array:
    """The smallest values over ``dim`` (the first of ATen's outputs; NaN propagates)."""
    return jnp.min(x, axis=dim, keepdims=keepdim)


@register_op("aten.sort")
def sort(x: jax.Array, *, dim: int = -1, descending: bool = False) -> jax.Array:
    """The values sorted along ``dim`` (the first of ATen's outputs)."""
    ordered = jnp.sort(x, axis=dim)
    return jnp.flip(ordered, axis=dim) if descending else ordered


@register_op("aten.topk")
def topk(x: jax.Array, *, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> jax.Array:
    """The ``k`` largest (or smallest) values along ``dim``, in order (the first of ATen's outputs)."""
    return _top_k(x, k, dim, largest)[0]


def _top_k(x: jax.Array, k: int, dim: int, largest: bool) -> tuple[jax.Array, jax.Array]:
    """(values, int32 indices) of the ``k`` largest or smallest entries along ``dim``, in order."""
    moved = jnp.moveaxis(x, dim, -1)
    values, index = jax.lax.top_k(moved if largest else -moved, k)
    return jnp.moveaxis(values if largest else -values, -1, dim), jnp.moveaxis(index, -1, dim).astype(jnp.int32)


@register_op("aten.sort:1")
def sort_indices(x: jax.Array, *, dim: int = -1, descending: bool = False) -> jax.Array:
    """The second of ``aten.sort``'s outputs: where each sorted value came from (the earlier of equal
    values first)."""
    return jnp.argsort(-x if descending else x, axis=dim, stable=True).astype(jnp.int32)


@register_op("aten.topk:1")
def topk_indices(x: jax.Array, *, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> jax.Array:
    """The second of ``aten.topk``'s outputs: where the ``k`` values came from."""
    return _top_k(x, k, dim, largest)[1]


@register_op("aten.max.dim:1")
def max_dim_indices(x: jax.Array, *, dim: int, keepdim: bool = False) -> jax.Array:
    """The second of ``aten.max.dim``'s outputs: the index of the largest value (the first of equal ones)."""
    return jnp.argmax(x, axis=dim, keepdims=keepdim).astype(jnp.int32)


@register_op("aten.min.dim:1")
def min_dim_indices(x: jax.Array, *, dim: int, keepdim: bool = False) -> jax.Array:
    """The second of ``aten.min.dim``'s outputs: the index of the smallest value (the first of equal ones)."""
    return jnp.argmin(x, axis=dim, keepdims=keepdim).astype(jnp.int32)


@register_op("aten.var_mean.correction:1")
def var_mean_mean(
    x: jax.Array, *, dim: list[int] | None = None, correction: float | None = None, keepdim: bool = False
) -> jax.Array:
    """The second of ``aten.var_mean.correction``'s outputs: the mean over ``dim``."""
    return mean(x, dim=dim, keepdim=keepdim)


@register_op("aten.gather")
def gather(x: jax.Array, index: jax.Array, *, dim: int, sparse_grad: bool = False) -> jax.Array:
    """out[..., i, ...] = x[..., index[..., i, ...], ...] along ``dim``."""
    return jnp.take_along_axis(x, index.astype(jnp.int32), axis=dim)


@register_op("aten.index_select")
def index_select(x: jax.Array, index: jax.Array, *, dim: int) -> jax.Array:
    """The slices of x along ``dim`` at ``index``."""
    return jnp.take(x, index.astype(jnp.int32), axis=dim)


@register_op("aten.repeat")
def repeat(x: jax.Array, *, repeats: list[Any]) -> jax.Array:
    """x tiled ``repeats`` times along each axis (leading repeats add axes)."""
    return jnp.tile(x, tuple(repeats))


@register_op("aten.argmax")
def argmax(x: jax.Array, *, dim: int | None = None, keepdim: bool = False) -> jax.Array:
    """The index of the largest value over ``dim`` (first on ties)."""
    return jnp.argmax(x, axis=dim, keepdims=keepdim).astype(jnp.int32)


@register_op("aten._softmax")
def softmax(x: jax.Array, *, dim: int, half_to_float: bool = False) -> jax.Array:
    """Softmax over ``dim``."""
    return jax.nn.softmax(x, axis=dim)


@register_op("aten._log_softmax")
def log_softmax(x: jax.Array, *, dim: int, half_to_float: bool = False) -> jax.Array:
    """Log-softmax over ``dim``."""
    return jax.nn.log_softmax(x, axis=dim)


# -- linear algebra --------------------------------------------------------------------------------------


@register_op("aten.mm")
def mm(x: jax.Array, mat2: jax.Array) -> jax.Array:
    """The matrix product x @ mat2."""
    return jnp.matmul(x, mat2, precision=HIGHEST)


@register_op("aten.bmm")
def bmm(x: jax.Array, mat2: jax.Array) -> jax.Array:
    """Batched matrix products."""
    return jnp.matmul(x, mat2, precision=HIGHEST)


@register_op("aten.matmul")
def matmul(x: jax.Array, other: jax.Array) -> jax.Array:
    """The matrix product with numpy's broadcasting of leading axes."""
    return jnp.matmul(x, other, precision=HIGHEST)


@register_op("aten.addmm")
def addmm(bias: jax.Array, mat1: jax.Array, mat2: jax.Array, *, beta: float = 1, alpha: float = 1) -> jax.Array:
    """beta * bias + alpha * (mat1 @ mat2)."""
    product = jnp.matmul(mat1, mat2, precision=HIGHEST)
    return (bias if beta == 1 else beta * bias) + (product if alpha == 1 else alpha * product)


# -- normalization -----------------------------------------------------------------------------------------


def _channel(v: jax.Array, ndim: int) -> jax.Array:
    """A per-channel vector shaped to broadcast over (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _standardized(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
    """(x - mean) / sqrt(biased variance + eps) over ``axes``, as ATen's norms compute it."""
    deviation = deviations(x, axes)
    return deviation * jax.lax.rsqrt(jnp.mean(jnp.square(deviation), axis=axes, keepdims=True) + eps)


def _channel_affine(y: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    """y * weight + bias per channel (axis 1), each where present."""
    if _present(weight):
        y = y * _channel(weight, y.ndim)
    return y + _channel(bias, y.ndim) if _present(bias) else y


@register_op("aten._native_batch_norm_legit_no_training")
def batch_norm(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array,
    running_mean: jax.Array,
    running_var: jax.Array,
    *,
    momentum: float,
    eps: float,
) -> jax.Array:
    """Batch normalization with the running statistics (eval mode); the first of ATen's outputs."""
    y = (x - _channel(running_mean, x.ndim)) * _channel(jax.lax.rsqrt(running_var + eps), x.ndim)
    return _channel_affine(y, weight, bias)


@register_op("aten._native_batch_norm_legit.no_stats")
def batch_norm_of_the_batch(
    x: jax.Array, weight: jax.Array, bias: jax.Array, *, training: bool, momentum: float, eps: float
) -> jax.Array:
    """Batch normalization with the batch's own per-channel statistics (biased variance), as ATen
    computes InstanceNorm: the batch viewed as one sample of N x C channels. The first of ATen's outputs."""
    return _channel_affine(_standardized(x, (0, *range(2, x.ndim)), eps), weight, bias)


@register_op("aten.native_layer_norm")
def layer_norm(
    x: jax.Array, weight: jax.Array, bias: jax.Array, *, normalized_shape: list[int], eps: float
) -> jax.Array:
    """Layer normalization over the last len(normalized_shape) axes; the first of ATen's outputs."""
    y = _standardized(x, tuple(range(x.ndim - len(normalized_shape), x.ndim)), eps)
    if _present(weight):
        y = y * weight
    return y + bias if _present(bias) else y


@register_op("aten.native_group_norm")
def group_norm(
    x: jax.Array, weight: jax.Array, bias: jax.Array, *, N: int, C: int, HxW: int, group: int, eps: float
) -> jax.Array:
    """Group normalization; the first of ATen's outputs."""
    y = _standardized(x.reshape(x.shape[0], group, -1), (2,), eps).reshape(x.shape)
    return _channel_affine(y, weight, bias)


# -- convolution and pooling ------------------------------------------------------------------------------


def _spatial_numbers(ndim: int) -> tuple[str, str, str]:
    letters = "DHW"[-(ndim - 2) :]
    return f"NC{letters}", f"OI{letters}", f"NC{letters}"


@register_op("aten.convolution")
def convolution(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array,
    *,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
    kernel_spatial_first: bool = False,
) -> jax.Array:
    """Convolution (1-, 2- or 3-D, grouped, dilated) or transposed convolution, PyTorch's weight layouts;
    ``kernel_spatial_first``: the weight of a (not transposed) convolution is stored (k..., in, out), the
    layout XLA's CPU convolutions read, which spares every call a transpose of it."""
    spatial = x.ndim - 2
    # (ATen takes one value for every axis: padding="valid" is captured as padding [0])
    stride, dilation = _expand(stride, spatial), _expand(dilation, spatial)
    padding, output_padding = _expand(padding, spatial, [0] * spatial), _expand(output_padding, spatial, [0] * spatial)
    numbers = _spatial_numbers(x.ndim)
    if kernel_spatial_first:
        if transposed:
            raise ValueError("kernel_spatial_first applies to a convolution that is not transposed")
        letters = numbers[0][2:]
        numbers = (numbers[0], f"{letters}IO", numbers[2])
    if not transposed:
        y = convolve(
            x,
            weight,
            strides=stride,
            padding=[(p, p) for p in padding],
            rhs_dilation=dilation,
            dimension_numbers=numbers,
            groups=groups,
        )
    else:
        # (in, out / groups, k...) -> (out, in / groups, k...), flipped: the gradient of a convolution
        c_in, c_out_g = weight.shape[0], weight.shape[1]
        k = weight.shape[2:]
        w = weight.reshape(groups, c_in // groups, c_out_g, *k)
        w = jnp.swapaxes(w, 1, 2).reshape(groups * c_out_g, c_in // groups, *k)
        w = jnp.flip(w, axis=tuple(range(2, 2 + spatial)))
        pads = [
            (d * (kk - 1) - p, d * (kk - 1) - p + op)
            for kk, p, d, op in zip(k, padding, dilation, output_padding, strict=True)
        ]
        y = convolve(
            x,
            w,
            strides=[1] * spatial,
            padding=pads,
            lhs_dilation=stride,
            rhs_dilation=dilation,
            dimension_numbers=numbers,
            groups=groups,
        )
    return y + _channel(bias, y.ndim) if _present(bias) else y


def _pool_geometry(
    shape: Sequence[int], kernel: list[int], stride: list[int], padding: list[int], dilation: list[int], ceil: bool
) -> list[tuple[int, int]]:
    """Per spatial axis, the (low, high) padding that gives PyTorch's output size (with ceil_mode, a
    last window must start inside the input or its left padding)."""
    widths = []
    for n, k, s, p, d in zip(shape, kernel, stride, padding, dilation, strict=True):
        span = n + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil else span // s) + 1
        if ceil and (out - 1) * s >= n + p:
            out -= 1
        widths.append((p, max(0, (out - 1) * s + d * (k - 1) + 1 - n - p)))
    return widths


def _expand(v: list[int], n: int, default: list[int] | None = None) -> list[int]:
    if not v:
        return default if default is not None else [1] * n
    return list(v) * n if len(v) == 1 else list(v)


def _max_pool_op(n: int) -> Callable[..., jax.Array]:
    def max_pool(
        x: jax.Array,
        *,
        kernel_size: list[int],
        stride: list[int] | None = None,
        padding: list[int] | int = 0,
        dilation: list[int] | int = 1,
        ceil_mode: bool = False,
    ) -> jax.Array:
        return _max_pool(x, n, kernel_size, stride, padding, dilation, ceil_mode)

    max_pool.__doc__ = f"Max pooling over the last {n} axes; the first of ATen's outputs (the pooled values)."
    return max_pool


for _count in (1, 2, 3):
    register_op(f"aten.max_pool{_count}d_with_indices")(_max_pool_op(_count))


def _as_list(v: list[int] | int | None) -> list[int]:
    return [] if v is None else [v] if isinstance(v, int) else list(v)


def _max_pool(x, n, kernel_size, stride, padding, dilation, ceil_mode):  # type: ignore[no-untyped-def]
    kernel = _expand(_as_list(kernel_size), n)
    stride = _expand(_as_list(stride), n, kernel)
    padding, dilation = _expand(_as_list(padding), n, [0] * n), _expand(_as_list(dilation), n)
    widths = _pool_geometry(x.shape[-n:], kernel, stride, padding, dilation, ceil_mode)
    lead = x.ndim - n
    return jax.lax.reduce_window(
        x,
        -jnp.inf,
        jax.lax.max,
        (1,) * lead + tuple(kernel),
        (1,) * lead + tuple(stride),
        [(0, 0)] * lead + widths,
        window_dilation=(1,) * lead + tuple(dilation),
    )


def _avg_pool_op(n: int) -> Callable[..., jax.Array]:
    def avg_pool(
        x: jax.Array,
        *,
        kernel_size: list[int],
        stride: list[int] | None = None,
        padding: list[int] | int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,  # (ATen's 1-D pool has none: never given there)
    ) -> jax.Array:
        return _avg_pool(x, n, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    avg_pool.__doc__ = f"Average pooling over the last {n} axes, with PyTorch's divisor rules."
    return avg_pool


for _count in (1, 2, 3):
    register_op(f"aten.avg_pool{_count}d")(_avg_pool_op(_count))


def _avg_pool(x, n, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):  # type: ignore[no-untyped-def]
    kernel = _expand(_as_list(kernel_size), n)
    stride = _expand(_as_list(stride), n, kernel)
    padding = _expand(_as_list(padding), n, [0] * n)
    widths = _pool_geometry(x.shape[-n:], kernel, stride, padding, [1] * n, ceil_mode)
    lead = x.ndim - n
    window, strides = (1,) * lead + tuple(kernel), (1,) * lead + tuple(stride)
    pads = [(0, 0)] * lead + widths
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
    if divisor_override:
        return total / divisor_override
    # The divisor counts the input cells of each window, and its padding cells when count_include_pad
    # (but never the cells ceil_mode adds past the padding).
    ones = jnp.ones(x.shape[-n:], x.dtype)
    if count_include_pad:
        ones = jnp.pad(ones, [(p, p) for p in padding], constant_values=1.0)
        widths = [(0, max(0, hi - p)) for (_, hi), p in zip(widths, padding, strict=True)]
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, tuple(kernel), tuple(stride), widths)
    return total / count


def _output_sizes(
    x: jax.Array, output_size: list[int] | None, scale_factors: list[float] | None, real: Any = np.float32
) -> list[tuple[int, int, Any]]:
    """(input size, output size, source-per-output scale in the float type ``real``) of each spatial axis
    of an upsampling: 1 / the scale factor when one is given, else input / output size."""
    factors = scale_factors or []
    spatial = x.shape[-len(output_size or factors) :]
    sizes = []
    for i, n in enumerate(spatial):
        if output_size:
            out = int(output_size[i])
            sizes.append((n, out, real(n) / real(out)))
        else:
            sizes.append((n, math.floor(n * factors[i]), real(1.0 / factors[i])))
    return sizes


def _upsample_nearest(
    x: jax.Array, *, output_size: list[int] | None = None, scale_factors: list[float] | None = None
) -> jax.Array:
    """Nearest-neighbour upsampling (F.interpolate's "nearest") of the last 1 or 2 axes: output cell i
    reads input cell min(floor(i * scale), n - 1), computed in float32 as PyTorch computes it."""
    sizes = _output_sizes(x, output_size, scale_factors)
    for k, (n, out, scale) in enumerate(sizes):
        source = np.minimum(np.floor(np.arange(out, dtype=np.float32) * scale).astype(np.int64), n - 1)
        x = resize.nearest(x, x.ndim - len(sizes) + k, source)
    return x


for _count in (1, 2):
    register_op(f"aten.upsample_nearest{_count}d.vec")(_upsample_nearest)


@register_op("aten.upsample_bilinear2d.vec")
def upsample_bilinear2d(
    x: jax.Array,
    *,
    output_size: list[int] | None = None,
    align_corners: bool = False,
    scale_factors: list[float] | None = None,
) -> jax.Array:
    """Bilinear upsampling of the last two axes (F.interpolate's "bilinear"), one axis after the other,
    with PyTorch's source positions: i * (n - 1) / (out - 1) with ``align_corners``, else
    (i + 0.5) * scale - 0.5 clamped at 0; positions and weights in x's precision, as PyTorch's."""
    real = np.dtype(x.dtype).type
    for k, (n, out, scale) in enumerate(_output_sizes(x, output_size, scale_factors, real)):
        if align_corners:
            source = np.arange(out, dtype=real) * (real(n - 1) / real(out - 1) if out > 1 else real(0))
        else:
            source = resize.half_pixel(out, scale)
        x = resize.linear(x, x.ndim - 2 + k, source)
    return x


@register_op("aten.grid_sampler_2d")
def grid_sampler_2d(
    x: jax.Array, grid: jax.Array, *, interpolation_mode: int, padding_mode: int, align_corners: bool
) -> jax.Array:
    """F.grid_sample of (N, C, H, W) at the (N, Ho, Wo, 2) grid's (x, y) points in [-1, 1]: "bilinear"
    (mode 0) or "nearest" (1, halves to even) with "zeros" (0: points outside read 0), "border" (1) or
    "reflection" (2) padding, as PyTorch's kernel computes it (the converter refuses "bicubic")."""
    n, c, h, w = x.shape
    ix = _grid_source(grid[..., 0], w, padding_mode, align_corners)
    iy = _grid_source(grid[..., 1], h, padding_mode, align_corners)
    flat = x.reshape(n, c, h * w)

    def corner(cy: jax.Array, cx: jax.Array) -> jax.Array:  # (zero outside the image; a NaN weight still
        # makes the point NaN, as in PyTorch's kernel, which multiplies the zero by it)
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        at = (jnp.clip(cy, 0, h - 1) * w + jnp.clip(cx, 0, w - 1)).astype(jnp.int32).reshape(n, 1, -1)
        values = jnp.take_along_axis(flat, at, axis=2).reshape(n, c, *cx.shape[1:])
        return jnp.where(inside[:, None], values, jnp.zeros((), x.dtype))

    if interpolation_mode == 1:
        return corner(jnp.round(iy), jnp.round(ix))
    west, north = jnp.floor(ix), jnp.floor(iy)
    east, south = west + 1, north + 1
    weights = (
        (east - ix) * (south - iy),
        (ix - west) * (south - iy),
        (east - ix) * (iy - north),
        (ix - west) * (iy - north),
    )
    points = ((north, west), (north, east), (south, west), (south, east))
    total = jnp.zeros((n, c, *ix.shape[1:]), x.dtype)
    for (cy, cx), weight in zip(points, weights, strict=True):
        total = total + corner(cy, cx) * weight[:, None]
    return total


def _grid_source(coordinate: jax.Array, size: int, padding_mode: int, align_corners: bool) -> jax.Array:
    """A grid coordinate in [-1, 1] as a source position on an axis of ``size`` (PyTorch's
    grid_sampler_compute_source_index): padded by clipping (border) or by reflecting (reflection)."""
    source = (coordinate + 1) / 2 * (size - 1) if align_corners else ((coordinate + 1) * size - 1) / 2
    if padding_mode == 2:  # reflected within [0, size - 1] (corners) or [-0.5, size - 0.5] (pixel edges)
        low, high = (0.0, 2.0 * (size - 1)) if align_corners else (-1.0, 2.0 * size - 1)
        if low == high:
            source = jnp.zeros_like(source)
        else:
            least, span = low / 2, (high - low) / 2
            distance = jnp.abs(source - least)
            extra, flips = jnp.fmod(distance, span), jnp.floor(distance / span)
            source = jnp.where(jnp.fmod(flips, 2) == 0, extra + least, span - extra + least)
    if padding_mode in (1, 2):
        source = jnp.clip(source, 0, size - 1)
    return source


@register_op("aten._adaptive_avg_pool2d")
@register_op("aten._adaptive_avg_pool3d")
def adaptive_avg_pool(x: jax.Array, *, output_size: list[int]) -> jax.Array:
    """Adaptive average pooling to ``output_size``: output cell i averages input cells
    floor(i n / out) .. ceil((i + 1) n / out) - 1 on each of the last two (three) axes."""
    return _adaptive_pool(x, output_size, jnp.mean)


@register_op("aten.adaptive_max_pool2d")
@register_op("aten.adaptive_max_pool3d")
def adaptive_max_pool(x: jax.Array, *, output_size: list[int]) -> jax.Array:
    """Adaptive max pooling to ``output_size`` over the same cells as the average's; the first of ATen's
    outputs (the pooled values)."""
    return _adaptive_pool(x, output_size, jnp.max)


def _adaptive_pool(x: jax.Array, output_size: list[int], reduce: Callable[..., jax.Array]) -> jax.Array:
    axes = tuple(range(-len(output_size), 0))
    for axis, out in zip(axes, output_size, strict=True):
        n = x.shape[axis]
        pieces = []
        for i in range(out):
            start, end = (i * n) // out, -(-((i + 1) * n) // out)
            pieces.append(reduce(jax.lax.slice_in_dim(x, start, end, axis=axis % x.ndim), axis=axis, keepdims=True))
        x = jnp.concatenate(pieces, axis=axis)
    return x


@register_op("aten.flip")
def flip(x: jax.Array, *, dims: list[int]) -> jax.Array:
    """x with its entries in reverse order along ``dims`` (a bidirectional RNN's backward pass)."""
    return jnp.flip(x, axis=tuple(dims))
