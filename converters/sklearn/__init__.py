"""scikit-learn converters. Importing this package registers them (it imports scikit-learn)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, model_ir
from mle_runtime.converters._registry import converter_for
from mle_runtime.converters.sklearn import (
    clustering,
    compose,
    dummy,
    encoders,
    kernels,
    linear,
    manifold,
    meta,
    neighbors,
    neural,
    outliers,
    pipeline,
    preprocessing,
    probabilistic,
    selection,
    sparse_coding,
    text,
    trees,
)
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.inputs import is_missing_category

__all__ = [
    "clustering",
    "compose",
    "dummy",
    "encoders",
    "convert",
    "convert_step",
    "kernels",
    "linear",
    "manifold",
    "meta",
    "neighbors",
    "neural",
    "outliers",
    "pipeline",
    "preprocessing",
    "probabilistic",
    "selection",
    "sparse_coding",
    "text",
    "trees",
]


def convert_step(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Convert one fitted estimator reading tensor ``x`` of width ``n_features``."""
    return converter_for(est)(est, b, x, n_features)


def _first_step(model: Any) -> Any:
    """The estimator that reads a model's input: a Pipeline's first step that is not 'passthrough'."""
    model = selection.unfrozen(model)
    for _, step in getattr(model, "steps", []):
        if step is not None and step != "passthrough":
            return _first_step(step)
    return model


def _reads_documents(model: Any) -> bool:
    """Whether the model's input is a sequence of documents (its first step a text vectorizer)."""
    return type(_first_step(model)).__name__ in ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")


def _input_width(model: Any) -> int | None:
    """n_features_in_, of the step that reads the input where the model hides it (a Pipeline's leading
    'passthrough' steps); 1 for a model whose input is one column, 1-D as scikit-learn takes it
    (IsotonicRegression's samples, a vectorizer's documents)."""
    n = getattr(model, "n_features_in_", None)
    if n is not None:
        return int(n)
    first = _first_step(model)
    if type(first).__name__ == "IsotonicRegression" or _reads_documents(model):
        return 1
    n = getattr(first, "n_features_in_", None)
    if n is None and type(first).__name__ == "SparseCoder":  # (stateless: used without fit)
        n = first.dictionary.shape[1]
    return None if n is None else int(n)


# Steps after which no NaN is left (when they accept NaN at all): imputers, and encoders, which turn NaN
# into a category, zeros or an error of their own (SplineTransformer(handle_missing="zeros"): zeros).
_REMOVES_NAN = {
    "SimpleImputer",
    "KNNImputer",
    "IterativeImputer",
    "OneHotEncoder",
    "SplineTransformer",
    "TargetEncoder",
    "MissingIndicator",
    "RandomTreesEmbedding",  # (its trees route NaN; what it gives is which leaf each row reached)
}
# Steps whose answer never reads the input, whatever their tags say: any value, NaN included, is accepted.
_IGNORE_VALUES = {"DummyClassifier", "DummyRegressor", "_ConstantPredictor"}
# Estimators that read infinities as numbers (validated with ensure_all_finite=False): their trees send +-inf
# past every threshold. (KernelDensity and NearestNeighbors take them too, into infinite or NaN distances:
# the runtime refuses those.)
_TAKES_INFINITY = {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "IsolationForest"}
# Meta-estimators that hand the input, unchecked, to their fitted parts (their tags say no NaN; scikit-learn
# takes NaN wherever every part does): the parts that read it.
_PARTS_READING_X: dict[str, Callable[[Any], list[Any]]] = {
    "CalibratedClassifierCV": lambda est: [c.estimator for c in est.calibrated_classifiers_],
    "OneVsRestClassifier": lambda est: list(est.estimators_),
    "OneVsOneClassifier": lambda est: list(est.estimators_),
    "OutputCodeClassifier": lambda est: list(est.estimators_),
    "MultiOutputClassifier": lambda est: list(est.estimators_),
    "MultiOutputRegressor": lambda est: list(est.estimators_),
    "TransformedTargetRegressor": lambda est: [est.regressor_],
    "FixedThresholdClassifier": lambda est: [est.estimator_],
    "TunedThresholdClassifierCV": lambda est: [est.estimator_],
}


def _removes_nan(est: Any) -> bool:
    name = type(est).__name__
    if name == "OrdinalEncoder":  # NaN becomes encoded_missing_value, unknown_value, or an error
        nan_seen = any(is_missing_category(v) for categories in est.categories_ for v in categories)
        if nan_seen:
            return not np.isnan(float(est.encoded_missing_value))
        return est.handle_unknown == "error" or not np.isnan(float(est.unknown_value))
    return name in _REMOVES_NAN


def _tag_allows_nan(est: Any) -> bool:
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn < 1.6
        return bool(est._get_tags().get("allow_nan", False))
    return bool(get_tags(est).input_tags.allow_nan)


def _accepts(value: str, est: Any, downstream: bool, n_columns: int) -> bool | set[int]:
    """Whether scikit-learn accepts ``value`` ("nan" or "inf") in the input of ``est`` when what follows it
    accepts it or not (``downstream``): ``est`` must accept it, and remove it or hand it to a step that
    accepts it. A ColumnTransformer answers per column: the set of columns where it is accepted."""
    est = selection.unfrozen(est)
    if est is None or est == "passthrough":
        return downstream
    if est == "drop":
        return True
    if hasattr(est, "best_estimator_"):  # a fitted search: its best estimator
        return _accepts(value, est.best_estimator_, downstream, n_columns)
    if type(est).__name__ == "FunctionTransformer" and not est.validate:  # (a fitted "passthrough" too)
        return downstream  # it checks nothing: the value goes on to what follows
    if hasattr(est, "steps"):
        answer: bool | set[int] = downstream
        for _, step in reversed(est.steps):
            width = getattr(step, "n_features_in_", n_columns)
            answer = _accepts(value, step, _all(answer, width), width)
        return answer
    if hasattr(est, "transformers_"):
        ok = set(range(n_columns))
        for name, step, _ in est.transformers_:
            columns = est._transformer_to_input_indices.get(name, [])
            if not _all(_accepts(value, step, downstream, len(columns)), len(columns)):
                ok -= set(columns)
        return ok
    if type(est).__name__ in _IGNORE_VALUES:
        return True
    if type(est).__name__ in _PARTS_READING_X:  # (their answers, probabilities or predictions, hold neither)
        return all(
            _all(_accepts(value, part, True, n_columns), n_columns)
            for part in _PARTS_READING_X[type(est).__name__](est)
        )
    if value == "inf":
        categorical = getattr(est, "is_categorical_", None)  # (histogram boosting refuses inf as a category)
        if type(est).__name__ in _TAKES_INFINITY and categorical is not None:
            return set(np.flatnonzero(~np.asarray(categorical)).tolist())
        return type(est).__name__ in _TAKES_INFINITY
    return _tag_allows_nan(est) and (_removes_nan(est) or downstream)


def _all(answer: bool | set[int], n_columns: int) -> bool:
    """A per-column answer as one: accepted in every column."""
    return answer if isinstance(answer, bool) else len(answer) == n_columns


def _allows(value: str, model: Any, n_columns: int) -> bool | list[int]:
    """True or False, or the columns where ``value`` ("nan" or "inf") is accepted (the runtime refuses it
    elsewhere)."""
    answer = _accepts(value, model, True, n_columns)
    if isinstance(answer, bool):
        return answer
    return True if len(answer) == n_columns else sorted(answer) if answer else False


def convert(model: Any, input_shape: tuple[int, ...] | None = None) -> ModelIR:
    """A fitted estimator or pipeline as graph, tensors and metadata."""
    try:
        check_is_fitted(model)
    except NotFittedError as e:
        raise ValueError(f"{type(model).__name__} is not fitted; call fit() before exporting") from e
    model = selection.unfrozen(model)  # (its class would otherwise name the model in the metadata)
    if hasattr(model, "cv_results_") and hasattr(model, "refit"):  # a search: refused first if it kept no best one
        selection.best_estimator(model)
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
        "allow_nan": _allows("nan", model, int(n)),
    }
    if allow_inf := _allows("inf", model, int(n)):
        metadata["allow_inf"] = allow_inf
    if names is not None:
        metadata["feature_names"] = [str(c) for c in names]
        if hasattr(_first_step(model), "transformers_"):  # a ColumnTransformer picks a DataFrame's columns by name
            metadata["columns_by_name"] = True
    if cls.__name__ == "IsotonicRegression" or _reads_documents(model):
        metadata["one_dimensional_input"] = True
    return model_ir(b, converted, metadata)


def _public_module(cls: type) -> str:
    """``sklearn.linear_model`` rather than ``sklearn.linear_model._ridge``, where the class is exported there."""
    parts = cls.__module__.split(".")
    public = ".".join(p for p in parts if not p.startswith("_"))
    module = sys.modules.get(public)
    try:
        exported = getattr(module, cls.__name__, None)
    except ImportError:  # an experimental class, public once enabled (HalvingGridSearchCV): not yet
        exported = cls
    return public if exported is cls else cls.__module__
