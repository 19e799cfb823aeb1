"""Resizing one axis of an array: nearest-neighbour and linear interpolation at the source positions the
frameworks compute (PyTorch's F.interpolate, Keras's UpSampling), shared by their ops. Sizes are static,
so positions and weights are computed with numpy at trace time, in the arithmetic each framework uses."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def nearest(x: jax.Array, axis: int, source: np.ndarray) -> jax.Array:
    """``x`` along ``axis`` read at the integer positions ``source`` (one per output cell)."""
    return jnp.take(x, jnp.asarray(source), axis=axis)


def linear(x: jax.Array, axis: int, source: np.ndarray) -> jax.Array:
    """``x`` along ``axis`` interpolated linearly at the fractional positions ``source`` (at least 0):
    between floor(p) and the cell after it, the last cell standing for any position past it."""
    n = x.shape[axis]
    low = np.minimum(np.floor(source).astype(np.int64), n - 1)
    high = low + (low < n - 1)
    shape = [1] * x.ndim
    shape[axis] = len(source)
    weight = jnp.asarray(source - low.astype(source.dtype), x.dtype).reshape(shape)
    return nearest(x, axis, low) * (1 - weight) + nearest(x, axis, high) * weight


def half_pixel(n_out: int, scale: Any) -> np.ndarray:
    """Source positions of output cells centred on the input's: (i + 0.5) * scale - 0.5, clamped at 0,
    in the float type of ``scale`` (PyTorch's align_corners=False, TensorFlow's half_pixel_centers)."""
    real = type(scale)
    return np.maximum((np.arange(n_out, dtype=real) + real(0.5)) * scale - real(0.5), real(0))
