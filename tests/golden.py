"""The fixed model behind tests/data/golden_v2_*.mle: built with the writer directly (no framework), so
its bytes depend on nothing but the container format."""

from __future__ import annotations

import numpy as np

COEF = np.arange(12, dtype=np.float64).reshape(4, 3) / 8.0 - 0.5
BIAS = np.array([0.25, -1.0, 2.0])
SCALE = np.array([1.0, 2.0, 4.0, 0.5], dtype=np.float32)
METADATA = {
    "framework": "golden",
    "task": "classifier",
    "classes": ["a", "b", "c"],
    "classes_dtype": "<U1",
    "n_features": 4,
    "run_outputs": ["label", "probabilities"],
}
GRAPH = {
    "inputs": [{"name": "X", "shape": [None, 4], "dtype": "float"}],
    "outputs": ["label", "probabilities"],
    "nodes": [
        {"op": "Div", "inputs": ["X", "scale"], "outputs": ["scaled"]},
        {"op": "Gemm", "inputs": ["scaled", "coef", "bias"], "outputs": ["decision"]},
        {"op": "ArgMax", "inputs": ["decision"], "outputs": ["label"]},
        {"op": "Softmax", "inputs": ["decision"], "outputs": ["probabilities"]},
    ],
}
TENSORS = {"scale": SCALE, "coef": COEF, "bias": BIAS}
# The compressed goldens carry one more, compressible tensor (the small ones are always stored raw).
TABLE = np.arange(512, dtype=np.float64)
# name -> (tensor compression, manifest compressed). The files without a compressed manifest were written
# before the writer compressed it; they stay to prove that today's reader still reads them.
GOLDEN = {
    "golden_v2_raw.mle": (0, False),
    "golden_v2_lz4.mle": (1, False),
    "golden_v2_zstd.mle": (2, False),
    "golden_v2_mz_raw.mle": (0, True),
    "golden_v2_mz_zstd.mle": (2, True),
}


def tensors_for(compression: int) -> dict[str, np.ndarray]:
    return {**TENSORS, "table": TABLE} if compression else dict(TENSORS)


def expected(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = (X / SCALE) @ COEF + BIAS
    p = np.exp(d - d.max(axis=1, keepdims=True))
    return np.array(["a", "b", "c"])[d.argmax(axis=1)], p / p.sum(axis=1, keepdims=True)
