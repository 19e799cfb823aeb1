"""JAX's 64-bit mode as a context manager, on every supported JAX version."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jax


@contextlib.contextmanager
def x64() -> Iterator[None]:
    """64-bit dtypes on inside the block only (float64 models; 64-bit records traced inside an op)."""
    scope: Any = getattr(jax, "enable_x64", None)
    if scope is None:  # older jax has only the experimental context manager
        from jax.experimental import enable_x64 as legacy  # type: ignore[attr-defined]

        context = legacy()
    else:
        context = scope(True)
    with context:
        yield
