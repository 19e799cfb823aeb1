"""A converted model as a ``flax.nnx`` module, to fine-tune in JAX and export back to .mle.

``MLERuntime.as_flax()`` returns a ``ConvertedModule``: its float tensors are ``nnx.Param`` (what an
optimizer built with ``wrt=nnx.Param`` updates), the others (integer indices, masks) plain
``nnx.Variable``; calling it runs the converted graph and returns the dict of outputs ``as_jax`` gives.
``export(path)`` writes the source file's graph and metadata with the module's current tensors (each in
its stored dtype), so a network converted from PyTorch or Keras and fine-tuned with optax loads again
with ``load_model``. Needs flax (``pip install 'mle-runtime[flax]'``).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from flax import nnx

from mle_runtime import verified
from mle_runtime.compression import compression_code
from mle_runtime.reader import MleFile
from mle_runtime.writer import serialize


class _Snapshot:
    """The tensors as loaded, kept out of the module's pytree (static, not trained)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays


class ConvertedModule(nnx.Module):
    """The converted graph with its tensors as flax variables."""

    def __init__(self, fn: Any, params: dict[str, jax.Array], source: MleFile):
        self._fn = fn
        self._source = source
        self._loaded = _Snapshot({name: np.asarray(value) for name, value in params.items()})
        self.weights = nnx.Dict(
            {
                name: nnx.Param(value) if np.issubdtype(value.dtype, np.floating) else nnx.Variable(value)
                for name, value in params.items()
            }
        )

    def __call__(self, *inputs: jax.Array) -> dict[str, jax.Array]:
        return self._fn({name: v[...] for name, v in self.weights.items()}, *inputs)  # type: ignore[no-any-return]

    def export(self, path: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        """Write an .mle file: the source's graph and metadata, these tensors. Options as
        ``export_model``: ``compression``, ``private_key``, ``encryption_key``."""
        unknown = sorted(set(options) - {"compression", "private_key", "encryption_key"})
        if unknown:
            raise TypeError(f"export() got unexpected options {unknown}")
        source = self._source
        tensors = {}
        for name, stored in source.tensors.items():
            value = np.asarray(self.weights[name][...]) if name in self.weights else stored
            if name in self._loaded.arrays and np.array_equal(value, self._loaded.arrays[name]):
                value = stored  # untouched: the stored tensor, not its cast to the runtime's precision
            tensors[name] = value.astype(stored.dtype) if value.dtype != stored.dtype else value
        metadata = {**source.metadata, "fine_tuned": True}
        chunks = serialize(
            metadata,
            source.graph,
            tensors,
            compression_code(options.get("compression", False)),
            encryption_key=options.get("encryption_key"),
            private_key=options.get("private_key"),
        )
        size = verified.write_remembered(path, chunks)
        return {"path": os.fspath(path), "file_size_bytes": size, "tensors": len(tensors)}
