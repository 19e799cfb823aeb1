"""What a file says about its model, read from the manifest alone (no JAX)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mle_runtime._version import __version__
from mle_runtime.errors import FormatError
from mle_runtime.format import MLEFormat
from mle_runtime.inputs import IGNORED
from mle_runtime.reader import MleFile

# Output roles (DESIGN.md, "Outputs of run").
OUTPUT_ROLES = {
    "label": "class labels, in the model's own class values",
    "probabilities": "class probabilities, (n, n_classes); a multilabel model's positive ones, (n, n_labels)",
    "log_probabilities": "the log of the class probabilities computed as the estimator's predict_log_proba, where "
    "that is not their plain log (naive Bayes, discriminant analysis: finite where a probability underflows)",
    "decision": "decision scores, as the estimator's decision_function",
    "scores": "the estimator's score_samples: anomaly scores, or a density's log",
    "predictions": "regression predictions, in the estimator's output shape",
    "transformed": "transformed features",
    "neighbor_distances": "kneighbors' distances to the nearest training rows, (n, k), computed only when asked",
    "neighbor_indices": "kneighbors' row numbers of the nearest training rows, (n, k), computed only when asked",
    "mahalanobis": "squared Mahalanobis distances to the fitted location, as a covariance estimator's mahalanobis",
    "std": "the predictive distribution's standard deviation (predict's return_std), computed only when asked",
    "invalid": "rows the source model would refuse (the runtime raises ValueError for them)",
}


def encode_classes(classes: np.ndarray) -> dict[str, Any]:
    """Class labels as JSON values plus the numpy dtype to rebuild them with."""
    classes = np.asarray(classes)
    if classes.dtype.kind not in "biufUO":
        raise TypeError(f"class labels of dtype {classes.dtype} are not supported")
    values = classes.tolist()
    if classes.dtype.kind == "O" and not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise TypeError("object class labels must be str, int, float or bool")
    return {"classes": values, "classes_dtype": classes.dtype.str}


def decode_output_classes(metadata: dict[str, Any]) -> list[np.ndarray] | None:
    """A multi-output classifier's classes, one array per output."""
    if "output_classes" not in metadata:
        return None
    entries = metadata["output_classes"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "classes" in e for e in entries):
        raise FormatError("metadata: output_classes must be a non-empty list of objects with classes")
    return [_class_values(e) for e in entries]


def decode_split_input_columns(metadata: dict[str, Any], width: int | None) -> dict[str, list[int | None]]:
    """Tensor -> the column of the model's input each of its columns holds (None: a computed one), for
    the computed tensors that trees and bins split (see narrowing.py)."""
    entries = metadata.get("split_input_columns", {})
    ok = isinstance(entries, dict) and all(
        isinstance(name, str)
        and isinstance(columns, list)
        and all(
            c is None or (type(c) is int and c >= 0 and (width is None or c < width))  # (bool is no column)
            for c in columns
        )
        for name, columns in entries.items()
    )
    if not ok:
        raise FormatError(
            f"metadata: split_input_columns must map tensor names to lists of input columns (0 to {width}) or null"
        )
    return entries


def decode_classes(metadata: dict[str, Any]) -> np.ndarray | None:
    return _class_values(metadata) if "classes" in metadata else None


def _class_values(metadata: dict[str, Any]) -> np.ndarray:
    """``classes`` rebuilt with ``classes_dtype``; anything malformed is a FormatError."""
    try:
        dtype = np.dtype(metadata["classes_dtype"])
        if dtype.kind not in "biufUO":
            raise TypeError(f"dtype {dtype} not allowed")
        values = metadata["classes"]
        if not isinstance(values, list) or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise TypeError("classes must be a list of scalars")
        if dtype.kind == "O":
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out
        return np.array(values, dtype=dtype)
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise FormatError(f"metadata: bad classes ({e})") from e


def decode_string_columns(metadata: dict[str, Any]) -> dict[int, Mapping[str | None, float]]:
    """The lookups of the host-side column step: column -> {string: code} for the input's string columns
    (and None's code, ``none_code``, where the file keeps None as a category of its own: files written
    before map None to NaN, a missing value), and IGNORED for the columns the model never reads (any value
    passes there)."""
    columns = metadata.get("string_columns", {})
    unused = metadata.get("unused_columns", [])
    none_code = metadata.get("none_code")
    try:
        if not isinstance(columns, dict) or not isinstance(unused, list):
            raise TypeError("string_columns must be an object, unused_columns a list")
        if none_code is not None and (type(none_code) not in (int, float) or not none_code < 0):
            raise TypeError(f"none_code must be a negative number, got {none_code!r}")
        out: dict[int, Mapping[str | None, float]] = {int(c): IGNORED for c in unused}
        for column, vocabulary in columns.items():
            if not isinstance(vocabulary, list) or not all(isinstance(s, str) for s in vocabulary):
                raise TypeError(f"column {column}: not a list of strings")
            lookup: dict[str | None, float] = {s: i for i, s in enumerate(vocabulary)}
            if none_code is not None:
                lookup[None] = float(none_code)
            out[int(column)] = lookup
        return out
    except (TypeError, ValueError) as e:
        raise FormatError(f"metadata: bad string_columns ({e})") from e


def compression_stats(mf: MleFile) -> dict[str, Any]:
    raw = sum(t["raw_nbytes"] for t in mf.tensor_table)
    stored = sum(t["nbytes"] for t in mf.tensor_table)
    return {
        "tensors": len(mf.tensor_table),
        "compressed_tensors": sum(t["compression"] != MLEFormat.COMPRESSION_NONE for t in mf.tensor_table),
        "raw_bytes": raw,
        "stored_bytes": stored,
        "ratio": (raw / stored) if stored else 1.0,
    }


def model_info(mf: MleFile) -> dict[str, Any]:
    flags = mf.header.flags
    graph = mf.graph
    return {
        "version": mf.header.version,
        "mle_runtime_version": __version__,
        "path": str(mf.path),
        "file_size": mf.file_size,
        "features": {
            "compression": bool(flags & MLEFormat.FEATURE_COMPRESSION),
            "encryption": bool(flags & MLEFormat.FEATURE_ENCRYPTION),
            "signing": bool(flags & MLEFormat.FEATURE_SIGNING),
        },
        "metadata": mf.metadata,
        "inputs": graph.get("inputs", []),
        "outputs": [
            {"name": n, "role": OUTPUT_ROLES.get(n, "model output")}
            for n in (mf.metadata.get("run_outputs") or graph.get("outputs", []))
        ],
        "graph_outputs": graph.get("outputs", []),
        "operators": sorted({str(n.get("op")) for n in graph.get("nodes", []) if isinstance(n, dict)}),
        "num_parameters": sum(math.prod(t["shape"]) for t in mf.tensor_table),
        "compression_stats": compression_stats(mf),
    }


def recommendations(mf: MleFile) -> list[str]:
    stats = compression_stats(mf)
    tips = []
    if stats["compressed_tensors"] == 0 and stats["raw_bytes"] > 1 << 20:
        tips.append(
            "tensors are stored raw (zero-copy mmap loading); export with compression='zstd' "
            "for a smaller file at the cost of a copy on load"
        )
    if stats["compressed_tensors"]:
        tips.append("compressed tensors are decompressed on load; export without compression for zero-copy loading")
    f64 = sum(t["raw_nbytes"] for t in mf.tensor_table if t["dtype"] == "float64")
    if f64 > 1 << 20:
        tips.append(
            f"{f64 / 2**20:.1f} MiB of float64 weights: the default float32 precision casts them on load; "
            "load with precision='float64' for scikit-learn's float64 results"
        )
    if not mf.metadata.get("feature_names"):
        tips.append("no feature names recorded: DataFrame inputs are not checked by column name")
    return tips or ["nothing to change"]
