"""Running an op's body over the rows of its input a fixed number at a time, so that a (rows, many)
intermediate stays small whatever the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def in_row_chunks(x: jax.Array, fn: Callable[[jax.Array], Any], chunk_rows: int) -> Any:
    """``fn`` over the rows of ``x`` ``chunk_rows`` at a time (the last chunk padded with zeros), its
    outputs (an array or a tuple of them, rows first) joined and cut back to x's rows; one call when x
    fits in one chunk."""
    rows = x.shape[0]
    if rows <= chunk_rows:
        return fn(x)
    chunks = -(-rows // chunk_rows)
    padded = jnp.pad(x, [(0, chunks * chunk_rows - rows)] + [(0, 0)] * (x.ndim - 1))
    out = jax.lax.map(fn, padded.reshape(chunks, chunk_rows, *x.shape[1:]))
    return jax.tree.map(lambda o: o.reshape(chunks * chunk_rows, *o.shape[2:])[:rows], out)
