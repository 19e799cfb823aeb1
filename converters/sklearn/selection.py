"""Feature and model selection: a feature selector keeps the columns its ``get_support`` names (RFE and
RFECV also predict, with their final estimator on those columns); a fitted search (GridSearchCV,
RandomizedSearchCV, the halving searches) is its refitted best estimator; RANSACRegressor its final inlier model;
SelfTrainingClassifier its final estimator; the threshold classifiers their estimator's score against
the threshold; a FrozenEstimator the estimator it wraps."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import feature_selection as fs
from sklearn import linear_model, model_selection, semi_supervised

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converter_for, converts
from mle_runtime.errors import UnsupportedModelError


@converts(
    fs.SelectKBest,
    fs.SelectPercentile,
    fs.GenericUnivariateSelect,
    fs.SelectFpr,
    fs.SelectFdr,
    fs.SelectFwe,
    fs.VarianceThreshold,
    fs.SelectFromModel,
    fs.SequentialFeatureSelector,
    fs.RFE,
    fs.RFECV,
)
def feature_selector(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    kept = np.flatnonzero(est.get_support())
    selected = x if len(kept) == n_features else b.take_columns(x, kept, "selected_features")
    final = getattr(est, "estimator_", None) if isinstance(est, fs.RFE) else None
    if final is None:
        return transformed(selected, len(kept))
    # RFE predicts with its final estimator on the kept columns, and transforms as a selector
    converted = converter_for(final)(final, b, selected, len(kept))
    converted.outputs.setdefault("transformed", selected)
    converted.n_outputs = len(kept)
    return converted


def _halving_searches() -> list[type]:
    """HalvingGridSearchCV and HalvingRandomSearchCV, from where they live whether or not the user has
    enabled them (``sklearn.experimental.enable_halving_search_cv`` only exports them)."""
    try:
        from sklearn.model_selection import _search_successive_halving as halving
    except ImportError:  # (moved in some scikit-learn): not supported there
        return []
    names = ("HalvingGridSearchCV", "HalvingRandomSearchCV")
    return [getattr(halving, name) for name in names if hasattr(halving, name)]


@converts(model_selection.GridSearchCV, model_selection.RandomizedSearchCV, *_halving_searches())
def fitted_search(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    best = best_estimator(est)
    return converter_for(best)(best, b, x, n_features)


def best_estimator(search: Any) -> Any:
    """A fitted search's refitted best estimator; refused when it kept none (``refit=False``)."""
    best = getattr(search, "best_estimator_", None)
    if best is None:
        raise UnsupportedModelError(
            f"{type(search).__name__} was fitted with refit=False: it kept no best estimator to export"
        )
    return best


_THRESHOLDED = [
    getattr(model_selection, name)
    for name in ("FixedThresholdClassifier", "TunedThresholdClassifierCV")
    if hasattr(model_selection, name)  # scikit-learn 1.5 and later
]


@converts(*_THRESHOLDED)
def thresholded_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """A binary classifier whose label is its estimator's positive-class score against a threshold
    (FixedThresholdClassifier's, or the one TunedThresholdClassifierCV found); its probabilities and
    decision are the estimator's."""
    inner = est.estimator_
    converted = converter_for(inner)(inner, b, x, n_features)
    classes = np.asarray(est.classes_)
    tuned = hasattr(est, "best_threshold_")
    pos_label = est._curve_scorer._get_pos_label() if tuned else est.pos_label
    positive = len(classes) - 1 if pos_label is None else int(np.flatnonzero(classes == pos_label)[0])
    wanted = ["predict_proba", "decision_function"] if est.response_method == "auto" else [est.response_method]
    method = next((m for m in wanted if hasattr(inner, m)), None)
    role = {"predict_proba": "probabilities", "decision_function": "decision"}.get(method or "")
    if role is None or role not in converted.outputs:
        raise UnsupportedModelError(f"{type(est).__name__}: its estimator gives no {' or '.join(wanted)}")
    if role == "probabilities":
        score = b.op("TakeColumns", converted.outputs[role], b.const("positive", np.array(positive, np.int32)))
    else:  # a binary decision scores the second class; scikit-learn turns it round for the first
        score = converted.outputs[role]
        score = score if positive == 1 else b.op("Sub", b.const("zero", np.array(0.0)), score)
    if tuned:
        threshold = float(est.best_threshold_)
    else:
        threshold = (0.5 if role == "probabilities" else 0.0) if est.threshold == "auto" else float(est.threshold)
    reached = b.op("IsPositive", b.op("Sub", score, b.const("threshold", np.array(threshold))), or_zero=True)
    if pos_label is not None and positive == 0:  # the label of a reached threshold is the first class
        reached = b.op("Sub", b.const("one", np.array(1, np.int32)), reached)
    outputs = {**converted.outputs, "label": reached}
    return Converted("classifier", outputs, converted.run_outputs, classes=classes)


@converts(linear_model.RANSACRegressor)
def ransac_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return converter_for(est.estimator_)(est.estimator_, b, x, n_features)


def _frozen() -> list[type]:
    try:
        from sklearn.frozen import FrozenEstimator  # scikit-learn 1.6 and later
    except ImportError:
        return []
    return [FrozenEstimator]


FROZEN = tuple(_frozen())


def unfrozen(est: Any) -> Any:
    """The estimator a FrozenEstimator wraps (it only refuses to be refitted), or ``est`` itself."""
    while isinstance(est, FROZEN):
        est = est.estimator
    return est


@converts(*FROZEN)
def frozen_estimator(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    inner = unfrozen(est)
    return converter_for(inner)(inner, b, x, n_features)


@converts(semi_supervised.SelfTrainingClassifier)
def self_training_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return converter_for(est.estimator_)(est.estimator_, b, x, n_features)
