"""Framework -> IR converters, shipped as ``mle_runtime.converters``. Each framework's module is
imported only when a model of that framework is exported."""

from mle_runtime.converters.export import (
    detect_framework,
    export_catboost_model,
    export_lightgbm_model,
    export_model,
    export_pytorch_model,
    export_sklearn_model,
    export_tensorflow_model,
    export_xgboost_model,
)

__all__ = [
    "detect_framework",
    "export_catboost_model",
    "export_lightgbm_model",
    "export_model",
    "export_pytorch_model",
    "export_sklearn_model",
    "export_tensorflow_model",
    "export_xgboost_model",
]
