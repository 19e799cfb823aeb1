"""scikit-learn converters. Importing this package registers them (it imports scikit-learn)."""

from __future__ import annotations

import sys
from typing import Any

import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, model_ir
from mle_runtime.converters._registry import converter_for
from mle_runtime.converters.sklearn import (
    clustering,
    kernels,
    linear,
    meta,
    neighbors,
    neural,
    pipeline,
    preprocessing,
    probabilistic,
    trees,
)
from mle_runtime.errors import UnsupportedModelError

__all__ = [
    "clustering",
    "convert",
    "convert_step",
    "kernels",
    "linear",
    "meta",
    "neighbors",
    "neural",
    "pipeline",
    "preprocessing",
    "probabilistic",
    "trees",
]


def convert_step(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Convert one fitted estimator reading tensor ``x`` of width ``n_features``."""
    return converter_for(est)(est, b, x, n_features)


def _input_width(model: Any) -> int | None:
    """n_features_in_, looking through a Pipeline's leading 'passthrough' steps (which hide it)."""
    n = getattr(model, "n_features_in_", None)
    if n is None and type(model).__name__ == "IsotonicRegression":  # fitted on one feature, 1-D or (n, 1)
        return 1
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


def convert(model: Any, input_shape: tuple[int, ...] | None = None) -> ModelIR:
    """A fitted estimator or pipeline as graph, tensors and metadata."""
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
    names = getattr(model, "feature_names_in_", None)
    cls = type(model)
    metadata: dict[str, Any] = {
        "framework": "sklearn",
        "framework_version": sklearn.__version__,
        "estimator": f"{_public_module(cls)}.{cls.__qualname__}",
        "n_features": int(n),
        "allow_nan": _allows_nan(model),
    }
    if names is not None:
        metadata["feature_names"] = [str(c) for c in names]
    if cls.__name__ == "IsotonicRegression":
        metadata["one_dimensional_input"] = True
    return model_ir(b, converted, metadata)


def _public_module(cls: type) -> str:
    """``sklearn.linear_model`` rather than ``sklearn.linear_model._ridge``, where the class is exported there."""
    parts = cls.__module__.split(".")
    public = ".".join(p for p in parts if not p.startswith("_"))
    module = sys.modules.get(public)
    return public if module is not None and getattr(module, cls.__name__, None) is cls else cls.__module__
