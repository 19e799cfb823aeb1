"""export_model: detect the framework, convert to the IR, write the .mle file, report."""

from __future__ import annotations

import datetime
import io
import os
import pickle
import sys
import time
from typing import Any

import numpy as np
from mle_runtime.converters._builder import GraphBuilder

from mle_runtime._version import __version__
from mle_runtime.compression import compression_code
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.metadata import encode_classes
from mle_runtime.writer import write_mle

# Root module of a class in the model's MRO -> framework. The MRO catches user subclasses of a
# framework's base class (torch.nn.Module, keras.Model) without importing the framework.
_FRAMEWORKS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "torch": "pytorch",
    "keras": "tensorflow",
    "tensorflow": "tensorflow",
    "tf_keras": "tensorflow",
}
_EXPORT_OPTIONS = {"compression", "timestamp", "metadata"}


def detect_framework(model: Any) -> str:
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root in _FRAMEWORKS:
            return _FRAMEWORKS[root]
    raise UnsupportedModelError(
        f"cannot tell which framework {type(model).__qualname__} comes from; supported: "
        "scikit-learn (more frameworks follow)"
    )


def joblib_size(model: Any) -> int:
    """Bytes ``joblib.dump`` writes for the model (pickle's if joblib is absent)."""
    try:
        import joblib
    except ImportError:
        return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.tell()


def _public_module(cls: type) -> str:
    """``sklearn.linear_model`` rather than ``sklearn.linear_model._ridge``, where the class is exported there."""
    parts = cls.__module__.split(".")
    public = ".".join(p for p in parts if not p.startswith("_"))
    module = sys.modules.get(public)
    return public if module is not None and getattr(module, cls.__name__, None) is cls else cls.__module__


def export_model(
    model: Any, output_path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Convert a trained model to an .mle file. Options: ``compression`` (False, True, "lz4", "zstd"),
    ``timestamp`` (record the export time; off by default so that exports are byte-for-byte
    reproducible), ``metadata`` (a JSON-able dict stored under ``metadata['user']``)."""
    framework = detect_framework(model)
    if framework == "sklearn":
        return export_sklearn_model(model, output_path, input_shape, **kwargs)
    raise UnsupportedModelError(f"{framework} models are not supported by this version yet; supported: scikit-learn")


def _input_width(model: Any) -> int | None:
    """n_features_in_, looking through a Pipeline's leading 'passthrough' steps (which hide it)."""
    n = getattr(model, "n_features_in_", None)
    if n is None and hasattr(model, "steps"):
        for _, step in model.steps:
            if step is not None and step != "passthrough":
                return _input_width(step)
    return None if n is None else int(n)


# Steps after which no NaN is left (when they accept NaN at all).
_REMOVES_NAN = {"SimpleImputer", "KNNImputer", "IterativeImputer"}


def _allows_nan(model: Any) -> bool:
    """Whether scikit-learn would accept NaN in X: in a pipeline, every step up to the first that
    removes NaN must accept it."""
    steps = [step for _, step in getattr(model, "steps", []) if step is not None and step != "passthrough"]
    if steps:
        for step in steps:
            if not _allows_nan(step):
                return False
            if type(step).__name__ in _REMOVES_NAN:
                return True
        return True
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn < 1.6
        return bool(model._get_tags().get("allow_nan", False))
    return bool(get_tags(model).input_tags.allow_nan)


def _sklearn_graph(
    model: Any, input_shape: tuple[int, ...] | None
) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    import sklearn
    from mle_runtime.converters.sklearn import convert_step
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as e:
        raise ValueError(f"{type(model).__name__} is not fitted; call fit() before exporting") from e
    n = _input_width(model)
    if n is None:
        raise UnsupportedModelError(f"{type(model).__name__} has no n_features_in_; cannot tell its input width")
    if input_shape is not None and tuple(input_shape)[-1] != n:
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with the model's {n} features")
    b = GraphBuilder()
    converted = convert_step(model, b, b.input("X", (None, int(n))), int(n))
    order = converted.run_outputs + sorted(set(converted.outputs) - set(converted.run_outputs))
    graph = b.finish({name: converted.outputs[name] for name in order})
    names = getattr(model, "feature_names_in_", None)
    cls = type(model)
    metadata: dict[str, Any] = {
        "framework": "sklearn",
        "framework_version": sklearn.__version__,
        "estimator": f"{_public_module(cls)}.{cls.__qualname__}",
        "task": converted.task,
        "n_features": int(n),
        "run_outputs": converted.run_outputs,
        "exporter": f"mle_runtime {__version__}",
    }
    metadata["allow_nan"] = _allows_nan(model)
    if names is not None:
        metadata["feature_names"] = [str(c) for c in names]
    if converted.classes is not None:
        metadata.update(encode_classes(converted.classes))
    return graph, b.tensors, metadata


def export_sklearn_model(
    model: Any, output_path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Export a fitted scikit-learn estimator or pipeline (see README, 'Supported models')."""
    unknown = sorted(set(kwargs) - _EXPORT_OPTIONS)
    if unknown:
        raise TypeError(f"export_model() got unexpected options {unknown}; known: {sorted(_EXPORT_OPTIONS)}")
    start = time.perf_counter()
    code = compression_code(kwargs.get("compression", False))
    graph, tensors, metadata = _sklearn_graph(model, input_shape)
    if kwargs.get("timestamp"):
        metadata["exported_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if kwargs.get("metadata") is not None:
        metadata["user"] = dict(kwargs["metadata"])
    size = write_mle(output_path, metadata, graph.to_json(), tensors, code)
    elapsed = (time.perf_counter() - start) * 1e3
    reference = joblib_size(model)
    return {
        "success": True,
        "path": os.fspath(output_path),
        "framework": "sklearn",
        "model_type": type(model).__name__,
        "file_size_bytes": size,
        "joblib_size_bytes": reference,
        "compression_ratio": reference / size,
        "export_time_ms": elapsed,
        "tensors": len(tensors),
        "operators": sorted({n.op for n in graph.nodes}),
    }
