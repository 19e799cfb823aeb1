"""Convolutions for the network ops, with a form of float64 convolutions on the CPU that XLA compiles.

XLA's CPU backend hands float32 convolutions to a library kernel (Eigen's), float64 ones to an
elemental loop nest of its own, and LLVM's optimization of that loop nest may not end: jax 0.10.2 did not compile a
3 x 3 convolution of 3 channels into 6 over a (5, 15, 15) float64 batch padded (1, 1) and (1, 2) in
minutes, where other shapes compile in under a second (a Keras SeparableConv2D after a ZeroPadding2D,
found by benchmarks/fuzz_keras.py). There a float64 convolution is built from strided slices of the
padded input, one for each of the kernel's positions: side by side, times the kernel as a matrix (one dot,
which XLA hands to Eigen), or, grouped, each times its position's weights and summed. Against the loop
nest where it compiles (float64, 3 x 3, measured by /tmp scripts, not kept): 16 -> 16 channels over
64 x 32 x 32 0.74x, 32 -> 64 over 64 x 16 x 16 0.32x (XLA's float64 dot runs at ~10 GFLOP/s here), one
32 x 32 row 1.6x, a 16-group convolution 8.5x, 3 -> 6 channels in 3 groups 2.1x. Float64 networks are
for exactness, not speed; a compile that does not end is a failure."""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from mle_runtime.ops import lowering_platform

HIGHEST = jax.lax.Precision.HIGHEST


def convolve(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dimension_numbers: tuple[str, str, str],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    groups: int = 1,
) -> jax.Array:
    """``jax.lax.conv_general_dilated`` at the highest precision; for float64 on the CPU, by slices and
    dots (the module's docstring says why). Same arguments, explicit (low, high) padding only."""
    if x.dtype != jnp.float64 or lowering_platform() != "cpu":
        return jax.lax.conv_general_dilated(
            x,
            kernel,
            window_strides=strides,
            padding=padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=groups,
            precision=HIGHEST,
        )
    numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, dimension_numbers)
    lhs_spec, rhs_spec, out_spec = numbers.lhs_spec, numbers.rhs_spec, numbers.out_spec
    spatial = x.ndim - 2
    # rows first and channels last: (n, spatial..., in) and (spatial..., in / groups, out)
    rows = jnp.transpose(x, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    weights = jnp.transpose(kernel, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    lhs_dilation = lhs_dilation or [1] * spatial
    rhs_dilation = rhs_dilation or [1] * spatial
    # (a negative padding crops, as the convolution's does)
    widths = [(0, 0, 0), *[(lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation, strict=True)], (0, 0, 0)]
    rows = jax.lax.pad(rows, jnp.zeros((), rows.dtype), widths)
    taps = weights.shape[:spatial]
    out_sizes = [(rows.shape[1 + i] - (taps[i] - 1) * rhs_dilation[i] - 1) // strides[i] + 1 for i in range(spatial)]
    c_in, c_out = weights.shape[-2], weights.shape[-1]
    positions = list(itertools.product(*[range(t) for t in taps]))
    windows = []
    for tap in positions:
        starts = [t * d for t, d in zip(tap, rhs_dilation, strict=True)]
        ends = [s + (n - 1) * k + 1 for s, n, k in zip(starts, out_sizes, strides, strict=True)]
        windows.append(jax.lax.slice(rows, [0, *starts, 0], [rows.shape[0], *ends, c_in * groups], [1, *strides, 1]))
    if groups == 1:  # one product of every tap's window, side by side, with the kernel as a matrix
        patches = jnp.concatenate(windows, axis=-1)
        total = jnp.matmul(patches, weights.reshape(-1, c_out), precision=HIGHEST)
    else:  # each tap's window times its weights, group by group, summed
        products = [
            jnp.einsum(
                "...gc,cgo->...go",
                window.reshape(*window.shape[:-1], groups, c_in),
                weights[tap].reshape(c_in, groups, c_out // groups),
                precision=HIGHEST,
            ).reshape(*window.shape[:-1], c_out)
            for tap, window in zip(positions, windows, strict=True)
        ]
        total = functools.reduce(operator.add, products)
    # back to the layout asked for: out_spec gives the axes of batch, features and each spatial axis
    source = [0] * x.ndim
    source[out_spec[0]], source[out_spec[1]] = 0, x.ndim - 1
    for i, axis in enumerate(out_spec[2:]):
        source[axis] = 1 + i
    return jnp.transpose(total, source)
