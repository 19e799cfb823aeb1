"""Keras 3 layers, one op per layer, as Keras computes them (channels-last layouts, TensorFlow's "same"
padding, Keras's activation functions). Weights are the layer's own, in Keras's layouts."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.ops import register_op, resize
from mle_runtime.ops.convolution import convolve
from mle_runtime.ops.ensemble import one_hot
from mle_runtime.ops.math import deviations, runtime_dtype

HIGHEST = jax.lax.Precision.HIGHEST


def activation(x: jax.Array, name: str, **kw: float) -> jax.Array:
    """Keras's activation ``name`` (keras.activations)."""
    if name in ("linear", None):
        return x
    if name == "relu":
        negative_slope, max_value, threshold = (
            kw.get("negative_slope", 0.0),
            kw.get("max_value"),
            kw.get("threshold", 0.0),
        )
        y = (
            jnp.where(x >= threshold, x, negative_slope * (x - threshold))
            if (negative_slope or threshold)
            else jax.nn.relu(x)
        )
        return y if max_value is None else jnp.minimum(y, max_value)
    if name == "relu6":
        return jnp.clip(x, 0, 6)
    if name == "leaky_relu":
        return jnp.where(x >= 0, x, kw.get("negative_slope", 0.2) * x)
    if name == "sigmoid":
        return jax.nn.sigmoid(x)
    if name == "hard_sigmoid":
        return jnp.clip(x / 6 + 0.5, 0, 1)
    if name in ("swish", "silu"):
        return x * jax.nn.sigmoid(x)
    if name == "hard_swish":
        return x * jnp.clip(x / 6 + 0.5, 0, 1)
    if name == "tanh":
        return jnp.tanh(x)
    if name == "softmax":
        return jax.nn.softmax(x, axis=int(kw.get("axis", -1)))
    if name == "log_softmax":
        return jax.nn.log_softmax(x, axis=int(kw.get("axis", -1)))
    if name == "gelu":
        if kw.get("approximate", False):
            return 0.5 * x * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + jax.scipy.special.erf(x / math.sqrt(2)))
    if name == "elu":
        alpha = kw.get("alpha", 1.0)
        return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))
    if name == "selu":
        return 1.0507009873554805 * jnp.where(x > 0, x, 1.6732632423543772 * jnp.expm1(jnp.minimum(x, 0)))
    if name == "softplus":
        return jax.nn.softplus(x)
    if name == "softsign":
        return x / (1 + jnp.abs(x))
    if name == "exponential":
        return jnp.exp(x)
    if name in _ELEMENTWISE:
        return _ELEMENTWISE[name](x)
    raise ValueError(f"unknown Keras activation {name!r}")


# The rest of keras.activations that act on each value alone, as Keras's TensorFlow backend writes them.
_ELEMENTWISE = {
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "log_sigmoid": jax.nn.log_sigmoid,
    "hard_tanh": lambda x: jnp.clip(x, -1.0, 1.0),
    "hard_silu": lambda x: x * jnp.clip(x / 6 + 0.5, 0, 1),
    "squareplus": lambda x: (x + jnp.sqrt(jnp.square(x) + 4)) / 2,
    "sparse_plus": lambda x: jnp.where(x <= -1, 0, jnp.where(x < 1, 0.25 * (x + 1) ** 2, x)),
    "sparse_sigmoid": lambda x: jnp.where(x <= -1, 0, jnp.where(x >= 1, 1, 0.5 * (x + 1))),
    "celu": lambda x: jnp.maximum(x, 0.0) + jnp.expm1(jnp.minimum(x, 0.0)),
    "tanh_shrink": lambda x: x - jnp.tanh(x),
    "soft_shrink": lambda x: jnp.where(x > 0.5, x - 0.5, jnp.where(x < -0.5, x + 0.5, 0)),
    "hard_shrink": lambda x: jnp.where(jnp.abs(x) > 0.5, x, 0),
}

ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "hard_sigmoid",
    "swish",
    "silu",
    "hard_swish",
    "tanh",
    "softmax",
    "log_softmax",
    "gelu",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "exponential",
    *_ELEMENTWISE,
)


@register_op("keras.Activation")
def activation_op(x: jax.Array, *, activation_name: str, arguments: dict[str, float] | None = None) -> jax.Array:
    """A Keras activation function (Activation layer, ReLU, LeakyReLU, Softmax, ...)."""
    return activation(x, activation_name, **(arguments or {}))


@register_op("keras.Dense")
def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array, *, activation_name: str = "linear") -> jax.Array:
    """x @ kernel + bias over the last axis, then the activation."""
    y = jnp.matmul(x, kernel, precision=HIGHEST)
    return activation(y + bias if bias.size else y, activation_name)


def _same_padding(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's "same" padding: as much as the output of ceil(n / s) needs, the extra cell after."""
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _padding(
    kind: str, spatial: tuple[int, ...], kernel: tuple[int, ...], strides: list[int], dilation: list[int]
) -> list[tuple[int, int]]:
    if kind == "valid":
        return [(0, 0)] * len(spatial)
    if kind == "same":
        return [_same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)]
    if kind == "causal":  # Conv1D: everything before
        return [((k - 1) * d, 0) for k, d in zip(kernel, dilation, strict=True)]
    raise ValueError(f"unknown padding {kind!r}")


def _numbers(spatial: int) -> tuple[str, str, str]:
    letters = "DHW"[-spatial:]
    return f"N{letters}C", f"{letters}IO", f"N{letters}C"


@register_op("keras.Conv")
def conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    *,
    strides: list[int],
    padding: str,
    dilation_rate: list[int],
    groups: int = 1,
    activation_name: str = "linear",
) -> jax.Array:
    """Conv1D / Conv2D / Conv3D, channels last: kernel (k..., in / groups, out)."""
    spatial = x.ndim - 2
    pads = _padding(padding, x.shape[1:-1], kernel.shape[:spatial], strides, dilation_rate)
    y = convolve(
        x,
        kernel,
        strides=strides,
        padding=pads,
        rhs_dilation=dilation_rate,
        dimension_numbers=_numbers(spatial),
        groups=groups,
    )
    return activation(y + bias if bias.size else y, activation_name)


def _transposed_padding(kernel: int, stride: int, dilation: int, padding: str, extra: int | None) -> tuple[int, int]:
    """Padding of the stride-dilated input with which a plain convolution gives Keras's transposed one:
    "valid" grows the input to (n - 1) * stride + max(span, stride), "same" to n * stride, and a given
    ``output_padding`` (``extra``) sets the cells added after instead."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return span - 1, span - 1 + (max(span, stride) - span if extra is None else extra)
    total = stride + span - 2 if extra is None else span + span % 2 - 2 + extra
    before = min((total + 1) // 2, span - 1)
    return before, total - before


@register_op("keras.ConvTranspose")
def conv_transpose(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    *,
    strides: list[int],
    padding: str,
    dilation_rate: list[int],
    output_padding: list[int] | None = None,
    activation_name: str = "linear",
) -> jax.Array:
    """Conv1DTranspose / Conv2DTranspose / Conv3DTranspose, channels last: kernel (k..., out, in)."""
    spatial = x.ndim - 2
    extras: list[int | None] = list(output_padding) if output_padding else [None] * spatial
    pads = [
        _transposed_padding(k, s, d, padding, e)
        for k, s, d, e in zip(kernel.shape[:spatial], strides, dilation_rate, extras, strict=True)
    ]
    # (as jax.lax.conv_transpose with transpose_kernel: the kernel flipped, its in and out swapped)
    flipped = jnp.swapaxes(jnp.flip(kernel, axis=tuple(range(spatial))), -1, -2)
    y = convolve(
        x,
        flipped,
        strides=[1] * spatial,
        padding=pads,
        lhs_dilation=strides,
        rhs_dilation=dilation_rate,
        dimension_numbers=_numbers(spatial),
    )
    return activation(y + bias if bias.size else y, activation_name)


@register_op("keras.DepthwiseConv")
def depthwise_conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    *,
    strides: list[int],
    padding: str,
    dilation_rate: list[int],
    activation_name: str = "linear",
) -> jax.Array:
    """DepthwiseConv1D / 2D, channels last: kernel (k..., in, multiplier); output channel c * m + j."""
    spatial = x.ndim - 2
    channels = x.shape[-1]
    k = kernel.reshape(*kernel.shape[:spatial], 1, channels * kernel.shape[-1])
    y = conv(
        x, k, jnp.zeros((0,), x.dtype), strides=strides, padding=padding, dilation_rate=dilation_rate, groups=channels
    )
    return activation(y + bias if bias.size else y, activation_name)


@register_op("keras.BatchNormalization")
def batch_normalization(
    x: jax.Array,
    gamma: jax.Array,
    beta: jax.Array,
    moving_mean: jax.Array,
    moving_variance: jax.Array,
    *,
    axis: int,
    epsilon: float,
) -> jax.Array:
    """Inference-mode batch normalization over ``axis`` (Keras: (x - mean) * rsqrt(var + eps) * gamma + beta)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    inv = jax.lax.rsqrt(moving_variance + epsilon)
    if gamma.size:
        inv = inv * gamma
    y = (x - moving_mean.reshape(shape)) * inv.reshape(shape)
    return y + beta.reshape(shape) if beta.size else y


@register_op("keras.LayerNormalization")
def layer_normalization(
    x: jax.Array, gamma: jax.Array, beta: jax.Array, *, axis: list[int], epsilon: float, rms_scaling: bool = False
) -> jax.Array:
    """Layer normalization over ``axis`` with Keras's variance (the mean of squared deviations). With
    ``rms_scaling`` Keras divides x itself, uncentred, by that deviation and scales it by gamma alone."""
    axes = tuple(a % x.ndim for a in axis)
    deviation = deviations(x, axes)
    var = jnp.mean(jnp.square(deviation), axis=axes, keepdims=True)
    y = (x if rms_scaling else deviation) * jax.lax.rsqrt(var + epsilon)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if gamma.size:
        y = y * gamma.reshape(shape)
    return y + beta.reshape(shape) if beta.size and not rms_scaling else y


@register_op("keras.Pool")
def pool(x: jax.Array, *, kind: str, pool_size: list[int], strides: list[int], padding: str) -> jax.Array:
    """MaxPooling / AveragePooling 1D-3D, channels last; "same" average pooling divides by the cells
    inside the input, as TensorFlow does."""
    spatial = x.ndim - 2
    pads = [(0, 0), *_padding(padding, x.shape[1:-1], tuple(pool_size), strides, [1] * spatial), (0, 0)]
    window, step = (1, *pool_size, 1), (1, *strides, 1)
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, step, pads)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, step, pads)
    ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, step, pads)
    return total / count


@register_op("keras.GlobalPool")
def global_pool(x: jax.Array, *mask: jax.Array, kind: str, keepdims: bool = False) -> jax.Array:
    """GlobalMax/AveragePooling 1D-3D, channels last: over every spatial axis. GlobalAveragePooling1D
    given a (batch, steps) mask: the sum of the kept steps over their count, as Keras divides them."""
    axes = tuple(range(1, x.ndim - 1))
    if mask and kind == "average":
        kept = mask[0].astype(bool)[..., None]
        total = jnp.sum(jnp.where(kept, x, 0), axis=axes, keepdims=keepdims)
        return total / jnp.sum(kept.astype(x.dtype), axis=axes, keepdims=keepdims)
    reduce = jnp.max if kind == "max" else jnp.mean
    return reduce(x, axis=axes, keepdims=keepdims)


@register_op("keras.Reshape")
def reshape(x: jax.Array, *, target_shape: list[int]) -> jax.Array:
    """x reshaped to (batch, *target_shape) (Flatten: target (-1,))."""
    return jnp.reshape(x, (x.shape[0], *target_shape))


@register_op("keras.Merge")
def merge(*xs: jax.Array, kind: str, axis: int = -1) -> jax.Array:
    """Add, Subtract, Multiply, Average, Maximum, Minimum or Concatenate of the inputs."""
    if kind == "concatenate":
        return jnp.concatenate(xs, axis=axis)
    if kind == "subtract":
        return xs[0] - xs[1]
    out = xs[0]
    for x in xs[1:]:
        out = {
            "add": jnp.add,
            "average": jnp.add,
            "multiply": jnp.multiply,
            "maximum": jnp.maximum,
            "minimum": jnp.minimum,
        }[kind](out, x)
    return out / len(xs) if kind == "average" else out


@register_op("keras.Permute")
def permute(x: jax.Array, *, dims: list[int]) -> jax.Array:
    """The non-batch axes reordered: output axis i + 1 is input axis dims[i] (numbered from 1)."""
    return jnp.transpose(x, (0, *dims))


@register_op("keras.RepeatVector")
def repeat_vector(x: jax.Array, *, n: int) -> jax.Array:
    """(batch, features) repeated ``n`` times into (batch, n, features)."""
    return jnp.repeat(x[:, None, :], n, axis=1)


@register_op("keras.Reverse")
def reverse(x: jax.Array, *, axis: int) -> jax.Array:
    """x reversed along ``axis`` (Bidirectional's backward sequence put back in time order)."""
    return jnp.flip(x, axis=axis)


@register_op("keras.ZeroPadding")
def zero_padding(x: jax.Array, *, padding: list[list[int]]) -> jax.Array:
    """ZeroPadding 1D-3D, channels last: (before, after) zeros on each spatial axis."""
    return jnp.pad(x, [(0, 0), *[tuple(p) for p in padding], (0, 0)])


@register_op("keras.Cropping")
def cropping(x: jax.Array, *, cropping: list[list[int]]) -> jax.Array:
    """Cropping 1D-3D, channels last: (before, after) cells cut from each spatial axis."""
    index = tuple(slice(lo, x.shape[1 + i] - hi) for i, (lo, hi) in enumerate(cropping))
    return x[(slice(None), *index)]


@register_op("keras.UpSampling")
def up_sampling(x: jax.Array, *, size: list[int], interpolation: str = "nearest") -> jax.Array:
    """UpSampling 1D-3D, channels last: each spatial axis ``size`` times longer, by repeating cells
    ("nearest", as Keras's ops.repeat) or, in 2-D, by TensorFlow's half-pixel "bilinear" resize."""
    for i, factor in enumerate(size):
        if interpolation == "nearest":
            x = jnp.repeat(x, factor, axis=1 + i)
        else:
            x = _half_pixel_linear(x, 1 + i, x.shape[1 + i] * factor)
    return x


def _half_pixel_linear(x: jax.Array, axis: int, n_out: int) -> jax.Array:
    """``x`` resized to ``n_out`` cells along ``axis`` as TensorFlow's bilinear resize (half-pixel centres,
    its float32 scale)."""
    return resize.linear(x, axis, resize.half_pixel(n_out, np.float32(x.shape[axis]) / np.float32(n_out)))


@register_op("keras.Resizing")
def resizing(x: jax.Array, *, size: list[int], interpolation: str) -> jax.Array:
    """Keras's Resizing of (batch, height, width, channels) to ``size``, as TensorFlow's image resize
    without antialiasing: half-pixel centres, "bilinear" between the two nearest cells, "nearest" the
    cell under the centre."""
    for axis, n_out in zip((1, 2), size, strict=True):
        if interpolation == "bilinear":
            x = _half_pixel_linear(x, axis, n_out)
        else:
            n = x.shape[axis]
            centres = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * (np.float32(n) / np.float32(n_out))
            x = resize.nearest(x, axis, np.minimum(np.floor(centres).astype(np.int64), n - 1))
    return x


@register_op("keras.PReLU")
def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """relu(x) - alpha * relu(-x), in Keras's order of operations."""
    return jax.nn.relu(x) + -alpha * jax.nn.relu(-x)


@register_op("keras.Embedding")
def embedding(indices: jax.Array, embeddings: jax.Array) -> jax.Array:
    """Rows of the embedding matrix at the (integer-valued) indices."""
    return jnp.take(embeddings, indices.astype(jnp.int32), axis=0)


@register_op("keras.MaskOf")
def mask_of(x: jax.Array, *, mask_value: float, last_axis: bool) -> jax.Array:
    """The steps a Keras mask keeps: Embedding(mask_zero=True)'s indices other than 0, or (``last_axis``)
    Masking's steps with some feature other than ``mask_value``; (batch, steps) booleans."""
    kept = x != jnp.asarray(mask_value, x.dtype)
    return jnp.any(kept, axis=-1) if last_axis else kept


@register_op("keras.Masking")
def masking(x: jax.Array, *, mask_value: float) -> jax.Array:
    """Keras's Masking: the steps whose features all equal ``mask_value`` set to 0."""
    return jnp.where(mask_of(x, mask_value=mask_value, last_axis=True)[..., None], x, 0)


@register_op("keras.MaskOr")
def mask_or(*masks: jax.Array) -> jax.Array:
    """A merge layer's mask (Add, Multiply, ...): the steps any of its inputs' masks keeps."""
    return functools.reduce(jnp.logical_or, (m.astype(bool) for m in masks))


@register_op("keras.ConcatenateMask")
def concatenate_mask(*inputs_and_masks: jax.Array, masked: list[bool], axis: int) -> jax.Array:
    """Concatenate's mask, as Keras computes it: each input's mask spread over the input's shape (all
    kept where it has none; ``masked`` says which do, their masks following the inputs), concatenated
    along ``axis``, then kept where any value along the last axis is."""
    inputs, masks = inputs_and_masks[: len(masked)], iter(inputs_and_masks[len(masked) :])
    spread = []
    for x, has_mask in zip(inputs, masked, strict=True):
        m = next(masks).astype(bool) if has_mask else jnp.ones(x.shape, bool)
        spread.append(jnp.broadcast_to(m.reshape(*m.shape, *[1] * (x.ndim - m.ndim)), x.shape))
    return jnp.any(jnp.concatenate(spread, axis=axis), axis=-1)


def _over_time(  # type: ignore[no-untyped-def]
    x: jax.Array, step, init, go_backwards: bool, return_sequences: bool, mask=(), zero_output_for_mask=False
):
    """Run ``step`` over the time axis (1) of x: the output of every step (batch first), or of the last;
    and the state after the last step. ``step(carry, x_t) -> (carry, output)``. With a (batch, steps) mask,
    as Keras's RNN loop: a masked step keeps the state and repeats the previous output (0 before the
    first), or outputs 0 with ``zero_output_for_mask``; the mask runs backwards with the steps."""
    xs = jnp.swapaxes(x, 0, 1)
    if mask:
        keep = jnp.swapaxes(mask[0].astype(bool), 0, 1)[..., None]
        if go_backwards:
            xs, keep = xs[::-1], keep[::-1]
        zero = jnp.zeros_like(jax.tree.leaves(init)[0])  # (every step's output is its first state, h)

        def masked_step(carry, x_keep):  # type: ignore[no-untyped-def]
            (state, previous), (x_t, keep_t) = carry, x_keep
            new_state, output = step(state, x_t)
            state = jax.tree.map(lambda new, old: jnp.where(keep_t, new, old), new_state, state)
            output = jnp.where(keep_t, output, zero if zero_output_for_mask else previous)
            return (state, output), output

        (state, _), hs = jax.lax.scan(masked_step, (init, zero), (xs, keep))
    else:
        if go_backwards:
            xs = xs[::-1]
        state, hs = jax.lax.scan(step, init, xs)
    return (jnp.swapaxes(hs, 0, 1) if return_sequences else hs[-1]), state


def _initial(
    operands: tuple[jax.Array, ...], count: int, zeros: tuple[jax.Array, ...]
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
    """(the recurrent states at the start, the mask if any) from the operands after a layer's weights:
    ``count`` given states first (in the projection's dtype), else ``zeros``."""
    if not count:
        return zeros, operands
    given = tuple(s.astype(z.dtype) for s, z in zip(operands[:count], zeros, strict=True))
    return given, operands[count:]


@register_op("keras.LSTM")
def lstm(
    x: jax.Array,
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array,
    *states_and_mask: jax.Array,
    activation_name: str = "tanh",
    recurrent_activation: str = "sigmoid",
    return_sequences: bool = False,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    initial_state: bool = False,
    append_cell_state: bool = False,
) -> jax.Array:
    """Keras's LSTM (gates i, f, c, o): the last output, or every step's with ``return_sequences``; with
    ``append_cell_state``, c after the last step follows as one more step (``return_state``'s last: the
    output (batch, 2, units), or (batch, steps + 1, units), which the graph slices apart). With
    ``initial_state`` the first two operands after the weights are h and c at the start (else zeros); a
    mask follows."""
    units = recurrent_kernel.shape[0]
    projected = jnp.matmul(x, kernel, precision=HIGHEST)

    def step(carry, z_x):  # type: ignore[no-untyped-def]
        h, c = carry
        z = z_x + jnp.matmul(h, recurrent_kernel, precision=HIGHEST)
        if bias.size:
            z = z + bias
        z0, z1, z2, z3 = jnp.split(z, 4, axis=-1)
        i, f, o = (activation(g, recurrent_activation) for g in (z0, z1, z3))
        c = f * c + i * activation(z2, activation_name)
        h = o * activation(c, activation_name)
        return (h, c), h

    zeros = jnp.zeros((x.shape[0], units), projected.dtype)
    init, mask = _initial(states_and_mask, 2 if initial_state else 0, (zeros, zeros))
    out, (_, c) = _over_time(projected, step, init, go_backwards, return_sequences, mask, zero_output_for_mask)
    if not append_cell_state:
        return out
    return jnp.concatenate([out if return_sequences else out[:, None], c[:, None]], axis=1)


@register_op("keras.ConvLSTM")
def conv_lstm(
    x: jax.Array,
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array,
    *,
    strides: list[int],
    padding: str,
    dilation_rate: list[int],
    activation_name: str = "tanh",
    recurrent_activation: str = "sigmoid",
    return_sequences: bool = False,
    go_backwards: bool = False,
) -> jax.Array:
    """Keras's ConvLSTM1D/2D/3D, channels last, x (batch, steps, *spatial, channels): each step's gates
    i, f, c, o are the input's convolution (kernel, strides, padding, dilation) plus the bias, plus h's
    "same" convolution of stride 1 (recurrent_kernel), as in Keras's ConvLSTMCell; the last output, or
    every step's."""
    batch, steps = x.shape[:2]
    spatial = x.ndim - 3
    projected = conv(
        x.reshape(batch * steps, *x.shape[2:]),
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
    )
    projected = projected.reshape(batch, steps, *projected.shape[1:])
    none = jnp.zeros((0,), x.dtype)

    def step(carry, z_x):  # type: ignore[no-untyped-def]
        h, c = carry
        z = z_x + conv(h, recurrent_kernel, none, strides=[1] * spatial, padding="same", dilation_rate=[1] * spatial)
        z0, z1, z2, z3 = jnp.split(z, 4, axis=-1)
        i, f, o = (activation(g, recurrent_activation) for g in (z0, z1, z3))
        c = f * c + i * activation(z2, activation_name)
        h = o * activation(c, activation_name)
        return (h, c), h

    zeros = jnp.zeros((batch, *projected.shape[2:-1], recurrent_kernel.shape[-1] // 4), projected.dtype)
    return _over_time(projected, step, (zeros, zeros), go_backwards, return_sequences)[0]


@register_op("keras.GRU")
def gru(
    x: jax.Array,
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array,
    *state_and_mask: jax.Array,
    activation_name: str = "tanh",
    recurrent_activation: str = "sigmoid",
    reset_after: bool = True,
    return_sequences: bool = False,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    initial_state: bool = False,
) -> jax.Array:
    """Keras's GRU (gates z, r, h; ``reset_after`` as Keras 3's default): the last output, or every step's.
    With ``initial_state`` the first operand after the weights is h at the start (else zeros)."""
    units = recurrent_kernel.shape[0]
    input_bias = bias[0] if bias.ndim == 2 else bias
    recurrent_bias = bias[1] if bias.ndim == 2 else jnp.zeros((0,), x.dtype)
    projected = jnp.matmul(x, kernel, precision=HIGHEST)
    if input_bias.size:
        projected = projected + input_bias

    def step(h, m_x):  # type: ignore[no-untyped-def]
        x_z, x_r, x_h = jnp.split(m_x, 3, axis=-1)
        if reset_after:
            inner = jnp.matmul(h, recurrent_kernel, precision=HIGHEST)
            if recurrent_bias.size:
                inner = inner + recurrent_bias
            r_z, r_r, r_h = jnp.split(inner, 3, axis=-1)
        else:
            r_z = jnp.matmul(h, recurrent_kernel[:, :units], precision=HIGHEST)
            r_r = jnp.matmul(h, recurrent_kernel[:, units : 2 * units], precision=HIGHEST)
        z = activation(x_z + r_z, recurrent_activation)
        r = activation(x_r + r_r, recurrent_activation)
        # reset_after (Keras 3's default) applies the reset gate after the recurrent product
        r_h = r * r_h if reset_after else jnp.matmul(r * h, recurrent_kernel[:, 2 * units :], precision=HIGHEST)
        hh = activation(x_h + r_h, activation_name)
        h = z * h + (1 - z) * hh
        return h, h

    zeros = jnp.zeros((x.shape[0], units), projected.dtype)
    (init,), mask = _initial(state_and_mask, 1 if initial_state else 0, (zeros,))
    return _over_time(projected, step, init, go_backwards, return_sequences, mask, zero_output_for_mask)[0]


@register_op("keras.SimpleRNN")
def simple_rnn(
    x: jax.Array,
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array,
    *state_and_mask: jax.Array,
    activation_name: str = "tanh",
    return_sequences: bool = False,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    initial_state: bool = False,
) -> jax.Array:
    """Keras's SimpleRNN: h = activation(x W + b + h U), the last output or every step's; with
    ``initial_state`` h at the start is the first operand after the weights (else zeros)."""
    projected = jnp.matmul(x, kernel, precision=HIGHEST)
    if bias.size:
        projected = projected + bias

    def step(h, p_x):  # type: ignore[no-untyped-def]
        h = activation(p_x + jnp.matmul(h, recurrent_kernel, precision=HIGHEST), activation_name)
        return h, h

    zeros = jnp.zeros((x.shape[0], recurrent_kernel.shape[0]), projected.dtype)
    (init,), mask = _initial(state_and_mask, 1 if initial_state else 0, (zeros,))
    return _over_time(projected, step, init, go_backwards, return_sequences, mask, zero_output_for_mask)[0]


@register_op("keras.GroupNormalization")
def group_normalization(
    x: jax.Array, gamma: jax.Array, beta: jax.Array, *, groups: int, axis: int, epsilon: float
) -> jax.Array:
    """Keras's GroupNormalization: ``axis`` split into ``groups``, each row's group normalized over its
    channels and every other axis but the batch's, times gamma plus beta. The deviations are taken about
    each group's first value (``deviations``) and scaled before beta is added: Keras adds x * inv and
    beta - mean * inv, whose cancellation missed beta by 4e-4 on a row of equal values where the
    float64 answer is beta itself."""
    a = axis % x.ndim
    grouped = x.reshape(*x.shape[:a], groups, x.shape[a] // groups, *x.shape[a + 1 :])
    axes = tuple(i for i in range(1, grouped.ndim) if i != a)
    centred = deviations(grouped, axes)
    inv = jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=axes, keepdims=True) + epsilon)
    shape = [1] * grouped.ndim
    shape[a], shape[a + 1] = groups, x.shape[a] // groups
    if gamma.size:
        inv = inv * gamma.reshape(shape)
    normalized = centred * inv
    if beta.size:
        normalized = normalized + beta.reshape(shape)
    return normalized.reshape(x.shape)


@register_op("keras.Dot")
def dot(x: jax.Array, y: jax.Array, *, axes: list[int], normalize: bool = False) -> jax.Array:
    """Keras's Dot of two (batch, ...) tensors of 2 or 3 axes (its batch_dot): the sum over x's axis
    ``axes[0]`` against y's ``axes[1]``, row by row; (batch, 1) for two vectors a row. ``normalize``: each
    L2-normalized along its axis first, as keras.ops.normalize (the norm at least Keras's epsilon, 1e-7)."""
    if normalize:
        x, y = _l2_normalized(x, axes[0], 1.0 / 1e-7), _l2_normalized(y, axes[1], 1.0 / 1e-7)
    left = jnp.moveaxis(x, axes[0], -1)
    right = jnp.moveaxis(y, axes[1], 1)
    if x.ndim == 2:
        return jnp.sum(left * right, axis=-1, keepdims=True)
    return jnp.matmul(left, right, precision=jax.lax.Precision.HIGHEST)


@register_op("keras.Attention")
def attention(
    query: jax.Array,
    value: jax.Array,
    key: jax.Array,
    scale: jax.Array,
    concat_weight: jax.Array,
    *masks: jax.Array,
    score_mode: str,
    causal: bool,
    masked: list[bool] | None = None,
) -> jax.Array:
    """Keras's Attention layer: scores query . key (times ``scale`` when it has one; "dot") or
    concat_weight * sum(tanh(scale * (query + key))) ("concat"); the scores of masked keys (the value's
    mask) and, when causal, of later keys lowered by 1e9, as Keras does; softmax over the keys, then the
    weighted sum of the values, 0 at the query's masked steps. ``masked``: whether the query and the value
    carry the (batch, steps) masks that follow, in that order."""
    if score_mode == "dot":
        scores = jnp.matmul(query, jnp.swapaxes(key, -2, -1), precision=jax.lax.Precision.HIGHEST)
        if scale.size:
            scores = scores * scale.reshape(())
    elif score_mode == "concat":
        summed = query[..., :, None, :] + key[..., None, :, :]
        if scale.size:
            summed = scale.reshape(()) * summed
        scores = concat_weight.reshape(()) * jnp.sum(jnp.tanh(summed), axis=-1)
    else:
        raise ValueError(f"keras.Attention: unknown score_mode {score_mode!r}")
    query_mask, value_mask = _given_masks(masks, masked or [False, False])
    rows, columns = scores.shape[-2:]
    lowered = jnp.zeros((1, rows, columns), bool)
    if causal:
        lowered = lowered | (jnp.arange(columns)[None, :] > jnp.arange(rows)[:, None])
    if value_mask is not None:
        lowered = lowered | ~value_mask[:, None, :]
    if causal or value_mask is not None:
        scores = jnp.where(lowered, scores - 1e9, scores)
    out = jnp.matmul(jax.nn.softmax(scores, axis=-1), value, precision=jax.lax.Precision.HIGHEST)
    return out if query_mask is None else jnp.where(query_mask[..., None], out, 0)


def _given_masks(masks: tuple[jax.Array, ...], masked: list[bool]) -> list[jax.Array | None]:
    """One boolean mask or None per flag of ``masked``, from the masks given for the flags that are set."""
    given = iter(masks)
    return [next(given).astype(bool) if flag else None for flag in masked]


@register_op("keras.CategoryEncoding")
def category_encoding(x: jax.Array, *, num_tokens: int, output_mode: str) -> jax.Array:
    """Keras's CategoryEncoding of integer ids (TensorFlow's bincount for multi_hot and count): one_hot of
    (batch,) or (batch, 1) ids, multi_hot (present or not) and count of (batch, k) ids; an id outside
    0 .. num_tokens - 1 counts nowhere."""
    if output_mode == "one_hot":
        return one_hot(x.reshape(x.shape[0]), n=num_tokens)
    counts = jnp.sum(one_hot(x, n=num_tokens), axis=-2)
    return counts if output_mode == "count" else (counts > 0).astype(counts.dtype)


@register_op("keras.Discretization")
def discretization(x: jax.Array, boundaries: jax.Array) -> jax.Array:
    """Keras's Discretization (TensorFlow's Bucketize): the bin of each value, the number of boundaries at
    most it (NaN past the last)."""
    return jnp.searchsorted(boundaries.astype(x.dtype), x, side="right").astype(jnp.int32)


@register_op("keras.EinsumDense")
def einsum_dense(x: jax.Array, kernel: jax.Array, bias: jax.Array, *, equation: str) -> jax.Array:
    """Keras's EinsumDense: the einsum of x and the kernel, plus the bias (shaped by Keras to broadcast
    against the output) when it has one."""
    y = jnp.einsum(equation, x, kernel, precision=HIGHEST)
    return y + bias if bias.size else y


@register_op("keras.RMSNormalization")
def rms_normalization(x: jax.Array, scale: jax.Array, *, epsilon: float) -> jax.Array:
    """Keras's RMSNormalization over the last axis: x * rsqrt(mean(x^2) + epsilon) * scale."""
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)
    return y * scale if scale.size else y


@register_op("keras.UnitNormalization")
def unit_normalization(x: jax.Array, *, axis: list[int]) -> jax.Array:
    """Keras's UnitNormalization: x times the reciprocal square root of its sum of squares over ``axis``,
    at most 1e12 (Keras's epsilon of 1e-12)."""
    return _l2_normalized(x, tuple(axis), 1e12)


def _l2_normalized(x: jax.Array, axis: int | tuple[int, ...], largest_scale: float) -> jax.Array:
    """x times the reciprocal square root of its sum of squares over ``axis``, at most ``largest_scale``
    (1 / Keras's epsilon), as keras.ops.normalize and UnitNormalization compute it."""
    return x * jnp.minimum(jax.lax.rsqrt(jnp.sum(x * x, axis=axis, keepdims=True)), largest_scale)


@register_op("keras.MultiHeadAttention")
def multi_head_attention(
    query: jax.Array,
    value: jax.Array,
    key: jax.Array,
    wq: jax.Array,
    bq: jax.Array,
    wk: jax.Array,
    bk: jax.Array,
    wv: jax.Array,
    bv: jax.Array,
    wo: jax.Array,
    bo: jax.Array,
    *masks: jax.Array,
    masked: list[bool] | None = None,
    causal: bool = False,
) -> jax.Array:
    """Keras's MultiHeadAttention: per-head projections (dim, heads, size), scaled dot products, softmax
    over the keys, the heads projected back. Scores left out by the masks (``masked``: whether the query,
    the value and the key carry the (batch, steps) masks that follow, in that order; a key's position
    kept where every given mask keeps it) or, when causal, by being later than the query are set to
    -0.7 x 3.38953e38 first, the large negative of Keras's TensorFlow backend."""

    def project(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
        y = jnp.einsum("abc,cde->abde", x, w, precision=HIGHEST)
        return y + b if b.size else y

    q = project(query, wq, bq) * (1.0 / math.sqrt(wq.shape[-1]))
    k, v = project(key, wk, bk), project(value, wv, bv)
    scores = jnp.einsum("aecd,abcd->acbe", k, q, precision=HIGHEST)  # (batch, heads, query, key)
    query_mask, value_mask, key_mask = _given_masks(masks, masked or [False] * 3)
    keep = jnp.ones((1, 1, 1, 1), bool)
    if query_mask is not None:
        keep = keep & query_mask[:, None, :, None]
    for mask in (value_mask, key_mask):
        if mask is not None:
            keep = keep & mask[:, None, None, :]
    if causal:
        keep = keep & (jnp.arange(scores.shape[-1])[None, :] <= jnp.arange(scores.shape[-2])[:, None])
    if masks or causal:
        scores = jnp.where(keep, scores, jnp.asarray(-0.7 * 3.38953e38, scores.dtype))
    scores = jax.nn.softmax(scores, axis=-1)
    heads = jnp.einsum("acbe,aecd->abcd", scores, v, precision=HIGHEST)
    out = jnp.einsum("abcd,cde->abe", heads, wo, precision=HIGHEST)
    return out + bo if bo.size else out


# -- keras.ops called on a functional model's symbolic tensors (x + 1, ops.mean(x, axis=1), x[:, 0]) ------


def _cast(x: jax.Array, dtype: str) -> jax.Array:
    """Keras's cast: a float dtype is the runtime's precision, an integer one int32."""
    return x.astype(runtime_dtype(dtype))


def _get_item(x: jax.Array, key: list[dict[str, object]]) -> jax.Array:
    """``x[key]``, each entry of ``key`` one of {"index": i}, {"slice": [start, stop, step]},
    {"newaxis": True}, {"ellipsis": True}."""
    index: list[object] = []
    for k in key:
        if "index" in k:
            index.append(k["index"])
        elif "slice" in k:
            index.append(slice(*k["slice"]))  # type: ignore[misc]
        else:
            index.append(None if "newaxis" in k else Ellipsis)
    return x[tuple(index)]


# Keras's operation class name -> the jnp function of the same numpy semantics (positional arguments as
# Keras's call takes them, the operation's own settings as keywords)
OPERATIONS = {
    "Add": jnp.add,
    "Subtract": jnp.subtract,
    "Multiply": jnp.multiply,
    "Divide": jnp.true_divide,
    "TrueDivide": jnp.true_divide,
    "Power": jnp.power,
    "Maximum": jnp.maximum,
    "Minimum": jnp.minimum,
    "Matmul": functools.partial(jnp.matmul, precision=HIGHEST),
    "Negative": jnp.negative,
    "Abs": jnp.abs,
    "Absolute": jnp.abs,
    "Exp": jnp.exp,
    "Expm1": jnp.expm1,
    "Log": jnp.log,
    "Log1p": jnp.log1p,
    "Sqrt": jnp.sqrt,
    "Rsqrt": jax.lax.rsqrt,
    "Square": jnp.square,
    "Sign": jnp.sign,
    "Floor": jnp.floor,
    "Ceil": jnp.ceil,
    "Sin": jnp.sin,
    "Cos": jnp.cos,
    "Tanh": jnp.tanh,
    "Erf": jax.scipy.special.erf,
    "Sigmoid": jax.nn.sigmoid,
    "Relu": jax.nn.relu,
    "Softplus": jax.nn.softplus,
    "Softmax": jax.nn.softmax,
    "Mean": jnp.mean,
    "Sum": jnp.sum,
    "Max": jnp.max,
    "Min": jnp.min,
    "Clip": jnp.clip,
    "Reshape": jnp.reshape,
    "Transpose": jnp.transpose,
    "ExpandDims": jnp.expand_dims,
    "Squeeze": jnp.squeeze,
    "Concatenate": lambda *xs, axis: jnp.concatenate(xs, axis=axis),
    "Stack": lambda *xs, axis: jnp.stack(xs, axis=axis),
    "Cast": _cast,
    "GetItem": _get_item,
}


@register_op("keras.Operation")
def operation(
    *tensors: jax.Array, function: str, arguments: list[dict[str, object]], options: dict[str, object]
) -> jax.Array:
    """Keras's ``function`` (one of OPERATIONS) of ``arguments``, each {"input": i} (the i-th tensor) or
    {"value": v} (a number or a structure of them), with keyword ``options``."""
    if function not in OPERATIONS:
        raise ValueError(f"keras.Operation: {function!r} is not one of {sorted(OPERATIONS)}")
    values = [tensors[int(a["input"])] if "input" in a else a["value"] for a in arguments]  # type: ignore[call-overload]
    return OPERATIONS[function](*values, **options)  # type: ignore[operator]
