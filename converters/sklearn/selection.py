"""Feature and model selection: a feature selector keeps the columns its ``get_support`` names (RFE and
RFECV also predict, with their final estimator on those columns); a fitted search (GridSearchCV,
RandomizedSearchCV) is its refitted best estimator; RANSACRegressor its final
inlier model."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import feature_selection as fs
from sklearn import linear_model, model_selection

from mle_runtime.converters._builder import Converted, GraphBuilder
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
        return Converted("transformer", {"transformed": selected}, ["transformed"], n_outputs=len(kept))
    # RFE predicts with its final estimator on the kept columns, and transforms as a selector
    converted = converter_for(final)(final, b, selected, len(kept))
    converted.outputs.setdefault("transformed", selected)
    converted.n_outputs = len(kept)
    return converted


@converts(model_selection.GridSearchCV, model_selection.RandomizedSearchCV)
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


@converts(linear_model.RANSACRegressor)
def ransac_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return converter_for(est.estimator_)(est.estimator_, b, x, n_features)
