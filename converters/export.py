"""export_model: detect the framework, convert to the IR, write the .mle file, report."""

from __future__ import annotations

import datetime
import io
import os
import pickle
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mle_runtime import encryption, signing, verified
from mle_runtime._version import __version__
from mle_runtime.compression import compression_code
from mle_runtime.converters._builder import ModelIR
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.writer import serialize

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
_EXPORT_OPTIONS = {"compression", "timestamp", "metadata", "private_key", "encryption_key"}


def detect_framework(model: Any) -> str:
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root in _FRAMEWORKS:
            return _FRAMEWORKS[root]
    raise UnsupportedModelError(
        f"cannot tell which framework {type(model).__qualname__} comes from; supported: "
        "scikit-learn, XGBoost, LightGBM, CatBoost, PyTorch, Keras"
    )


def _from_file(path: Path) -> Any:
    """The model in a framework's own file (see ``export_model``)."""
    from mle_runtime.converters.native import load_native, native_format

    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    framework = native_format(path)
    if framework is None:
        raise UnsupportedModelError(
            f"{path.name} is not an XGBoost, LightGBM, CatBoost, Keras or PyTorch (.pt2) model file; a pickle is "
            "not loaded here (unpickling runs code stored in it): load one you trust (joblib.load) and pass the model"
        )
    return load_native(path, framework)


def joblib_size(model: Any) -> int | None:
    """Bytes ``joblib.dump`` writes for the model (pickle's if joblib is absent); None for a model that
    cannot be pickled (a module holding a lambda, say), which exports all the same."""
    try:
        import joblib
    except ImportError:
        joblib = None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Keras pickles through its own saving code, which TensorFlow's tensors make warn under numpy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            if joblib is None:
                pickle.dump(model, buf, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                joblib.dump(model, buf)
        except Exception:  # (whatever the framework's own pickling raises: Keras's config of an operation
            return None  # holding a numpy number raises NotImplementedError; the size is only reported)
    return buf.tell()


def export_model(
    model: Any, output_path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Convert a trained model to an .mle file. Options: ``compression`` (False, True, "lz4", "zstd"),
    ``timestamp`` (record the export time; off by default so that exports are byte-for-byte
    reproducible), ``metadata`` (a JSON-able dict stored under ``metadata['user']``), ``private_key``
    (Ed25519, raw bytes or PEM: sign the file), ``encryption_key`` (32 bytes: encrypt the tensor data
    with AES-256-GCM; a fresh nonce makes each such export's bytes differ). ``model`` may also be the path
    of a file in its framework's own format (XGBoost .json/.ubj, LightGBM text, CatBoost .cbm, Keras .keras,
    PyTorch .pt2, whose loading may run code stored in it), as ``mle export`` reads them; a pickle is not
    loaded (that runs code stored in it): load a pickle you trust yourself and pass the model."""
    if isinstance(model, (str, os.PathLike)):
        model = _from_file(Path(model))
    framework = detect_framework(model)
    if framework == "sklearn":
        return export_sklearn_model(model, output_path, input_shape, **kwargs)
    if framework == "xgboost":
        return export_xgboost_model(model, output_path, input_shape, **kwargs)
    if framework == "lightgbm":
        return export_lightgbm_model(model, output_path, input_shape, **kwargs)
    if framework == "catboost":
        return export_catboost_model(model, output_path, input_shape, **kwargs)
    if framework == "pytorch":
        return export_pytorch_model(model, output_path, input_shape, **kwargs)
    return export_tensorflow_model(model, output_path, **kwargs)


def export_sklearn_model(
    model: Any, output_path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Export a fitted scikit-learn estimator or pipeline (see README, 'Supported models')."""
    from mle_runtime.converters.sklearn import convert

    return _export(model, output_path, "sklearn", lambda: convert(model, input_shape), kwargs)


def export_xgboost_model(
    model: Any,
    output_path: str | os.PathLike[str],
    input_shape: tuple[int, ...] | None = None,
    *,
    iteration_range: tuple[int, int] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Export an XGBoost model (``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``, ``XGBRF*`` or a raw
    ``Booster``). ``iteration_range=(begin, end)`` keeps those boosting rounds; by default, a model
    trained with early stopping keeps the rounds up to its best iteration, as its ``predict`` does."""
    from mle_runtime.converters.xgboost import convert

    return _export(model, output_path, "xgboost", lambda: convert(model, input_shape, iteration_range), kwargs)


def export_lightgbm_model(
    model: Any,
    output_path: str | os.PathLike[str],
    input_shape: tuple[int, ...] | None = None,
    *,
    num_iteration: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Export a LightGBM model (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker`` or a raw ``Booster``).
    ``num_iteration`` keeps the first iterations; by default the best iteration when early stopping
    recorded one, as ``predict`` does."""
    from mle_runtime.converters.lightgbm import convert

    return _export(model, output_path, "lightgbm", lambda: convert(model, input_shape, num_iteration), kwargs)


def export_catboost_model(
    model: Any, output_path: str | os.PathLike[str], input_shape: tuple[int, ...] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Export a CatBoost model (``CatBoostClassifier``, ``CatBoostRegressor``) with float features."""
    from mle_runtime.converters.catboost import convert

    return _export(model, output_path, "catboost", lambda: convert(model, input_shape), kwargs)


def export_pytorch_model(
    model: Any,
    output_path: str | os.PathLike[str],
    input_shape: tuple[int, ...] | list[tuple[int, ...]] | None = None,
    *,
    example_inputs: Any = None,
    quantize: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Export a ``torch.nn.Module`` in eval mode, captured with ``torch.export`` for inputs shaped
    ``input_shape`` = (batch, ...) with any batch size (a module of several inputs: one shape per input
    of ``forward``, in order, e.g. ``[(1, 10), (1, 4)]``), or shaped and typed as ``example_inputs`` (a
    tensor or a tuple of tensors: integer token ids, bool masks); or a ``torch.export.ExportedProgram``
    already captured with a dynamic batch dimension (as ``torch.export.load`` returns it from a ``.pt2``
    file). ``quantize="fp16"`` or ``"int8"`` (per output channel) stores the weight tensors smaller; the
    result's ``quantization`` reports the reduction."""
    from mle_runtime.converters.pytorch import convert

    return _export_network(
        model, output_path, "pytorch", lambda: convert(model, input_shape, example_inputs), quantize, kwargs
    )


def export_tensorflow_model(
    model: Any, output_path: str | os.PathLike[str], *, quantize: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Export a built Keras 3 model (Sequential or Functional); its inputs and outputs keep their order
    and names. ``quantize`` as for PyTorch."""
    from mle_runtime.converters.keras import convert

    return _export_network(model, output_path, "tensorflow", lambda: convert(model), quantize, kwargs)


def _export_network(
    model: Any,
    output_path: str | os.PathLike[str],
    framework: str,
    convert: Callable[[], ModelIR],
    quantize: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """_export for a network, with the opt-in weight quantization and its report."""
    from mle_runtime.converters.quantize import MODES
    from mle_runtime.converters.quantize import quantize as quantize_ir

    if quantize is not None and quantize not in MODES:
        raise ValueError(f"quantize must be one of {MODES} or None, got {quantize!r}")
    reports: dict[str, Any] = {}

    def converted() -> ModelIR:
        ir = convert()
        if quantize is None:
            return ir
        ir, reports["quantization"] = quantize_ir(ir, quantize)
        return ir

    return {**_export(model, output_path, framework, converted, options), **reports}


def _export(
    model: Any,
    output_path: str | os.PathLike[str],
    framework: str,
    convert: Callable[[], ModelIR],
    options: dict[str, Any],
) -> dict[str, Any]:
    """Convert, add the exporter's metadata, write atomically and report (framework-independent)."""
    unknown = sorted(set(options) - _EXPORT_OPTIONS)
    if unknown:
        raise TypeError(f"export_model() got unexpected options {unknown}; known: {sorted(_EXPORT_OPTIONS)}")
    start = time.perf_counter()
    code = compression_code(options.get("compression", False))
    # Bad keys fail before a possibly long conversion.
    if options.get("encryption_key") is not None:
        encryption.check_key(options["encryption_key"], "encryption_key")
    if options.get("private_key") is not None:
        signing.private_key(options["private_key"])
    graph, tensors, metadata = convert()
    metadata = {**metadata, "exporter": f"mle_runtime {__version__}"}
    if options.get("timestamp"):
        metadata["exported_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if options.get("metadata") is not None:
        metadata["user"] = dict(options["metadata"])
    chunks = serialize(
        metadata,
        graph.to_json(),
        tensors,
        code,
        encryption_key=options.get("encryption_key"),
        private_key=options.get("private_key"),
    )
    size = verified.write_remembered(output_path, chunks)
    elapsed = (time.perf_counter() - start) * 1e3
    reference = joblib_size(model)
    return {
        "success": True,
        "path": os.fspath(output_path),
        "framework": framework,
        "model_type": type(model).__name__,
        "file_size_bytes": size,
        "joblib_size_bytes": reference,
        "compression_ratio": None if reference is None else reference / size,
        "export_time_ms": elapsed,
        "tensors": len(tensors),
        "operators": sorted({n.op for n in graph.nodes}),
    }
