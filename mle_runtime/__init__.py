"""mle-runtime: trained models as pure jax.numpy functions in one .mle file.

Importing this package does not import JAX; the runtime and the converters load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mle_runtime._version import __version__
from mle_runtime.api import benchmark_model, get_supported_operators, get_version_info, inspect_model
from mle_runtime.compression import CompressionUtils
from mle_runtime.errors import (
    DecryptionError,
    DeviceError,
    FormatError,
    InputError,
    MleError,
    SignatureError,
    UnsupportedModelError,
    UnsupportedOpError,
)
from mle_runtime.format import MLEFormat
from mle_runtime.security import SecurityUtils

if TYPE_CHECKING:
    from mle_runtime.batch import predict_file
    from mle_runtime.converters import (
        export_catboost_model,
        export_lightgbm_model,
        export_model,
        export_pytorch_model,
        export_sklearn_model,
        export_tensorflow_model,
        export_xgboost_model,
    )
    from mle_runtime.model_stack import ModelStack, stack
    from mle_runtime.runtime import MLERuntime, load_model

_LAZY = {
    "MLERuntime": "mle_runtime.runtime",
    "load_model": "mle_runtime.runtime",
    "stack": "mle_runtime.model_stack",
    "predict_file": "mle_runtime.batch",
    "ModelStack": "mle_runtime.model_stack",
    "export_model": "mle_runtime.converters",
    "export_sklearn_model": "mle_runtime.converters",
    "export_xgboost_model": "mle_runtime.converters",
    "export_lightgbm_model": "mle_runtime.converters",
    "export_catboost_model": "mle_runtime.converters",
    "export_pytorch_model": "mle_runtime.converters",
    "export_tensorflow_model": "mle_runtime.converters",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mle_runtime' has no attribute {name!r}")


__all__ = [
    "CompressionUtils",
    "DecryptionError",
    "DeviceError",
    "FormatError",
    "InputError",
    "MLEFormat",
    "MLERuntime",
    "MleError",
    "ModelStack",
    "SecurityUtils",
    "SignatureError",
    "UnsupportedModelError",
    "UnsupportedOpError",
    "__version__",
    "benchmark_model",
    "export_catboost_model",
    "export_lightgbm_model",
    "export_model",
    "export_pytorch_model",
    "export_sklearn_model",
    "export_tensorflow_model",
    "export_xgboost_model",
    "get_supported_operators",
    "get_version_info",
    "inspect_model",
    "load_model",
    "predict_file",
    "stack",
]
