"""Module-level functions of the public API."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mle_runtime._version import __version__
from mle_runtime.format import MLEFormat
from mle_runtime.metadata import model_info, recommendations
from mle_runtime.reader import read_manifest


def inspect_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the header and manifest (no weights, no JAX) and describe the model."""
    mf = read_manifest(path)
    info = model_info(mf)
    return {
        "basic_info": {k: info[k] for k in ("version", "metadata", "features", "inputs", "outputs", "operators")},
        "file_size": mf.file_size,
        "path": str(mf.path),
        "tensors": [
            {
                "name": t["name"],
                "dtype": t["dtype"],
                "shape": t["shape"],
                "stored_bytes": t["nbytes"],
                "raw_bytes": t["raw_nbytes"],
                "compression": t["compression"],
            }
            for t in mf.tensor_table
        ],
        "num_parameters": info["num_parameters"],
        "compression_stats": info["compression_stats"],
        "recommendations": recommendations(mf),
    }


def benchmark_model(
    model_path: str | os.PathLike[str], inputs: Any, num_runs: int = 100, device: str = "cpu"
) -> dict[str, Any]:
    from mle_runtime.runtime import load_model

    return load_model(model_path, device=device).benchmark(inputs, num_runs=num_runs)


def get_supported_operators() -> list[str]:
    from mle_runtime.ops import supported_operators

    return supported_operators()


def _backends() -> dict[str, list[str]]:
    import jax

    found = {}
    for platform in ("cpu", "gpu", "tpu"):
        try:
            found[platform] = [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices(platform)]
        except RuntimeError:
            continue
    return found


def get_version_info() -> dict[str, Any]:
    import jax
    import jaxlib

    return {
        "version": __version__,
        "format_version": MLEFormat.MLE_VERSION,
        "features": [
            "mmap zero-copy loading",
            "compression: lz4, zstd",
            "quantization: int8, fp16",
            "compiled-executable cache (HMAC-verified)",
            "Ed25519 signing and verified loading",
            "AES-256-GCM encryption of tensor data",
            "float32 and float64 precision",
        ],
        "operators": get_supported_operators(),
        "jax": jax.__version__,
        "jaxlib": getattr(jaxlib, "__version__", "unknown"),
        "numpy": np.__version__,
        "backends": _backends(),
    }
