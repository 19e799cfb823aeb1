"""DummyClassifier and DummyRegressor: the same answer for every row (the strategies that are not
random: a class prior, the most frequent class, a constant; a mean, median, quantile or constant)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import dummy

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError


@converts(dummy.DummyClassifier)
def dummy_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    if est.n_outputs_ != 1:
        raise UnsupportedModelError("DummyClassifier fitted on several outputs is not supported")
    if est._strategy not in ("most_frequent", "prior", "constant"):
        raise UnsupportedModelError(f"DummyClassifier(strategy={est._strategy!r}) answers at random; not supported")
    classes, prior = np.asarray(est.classes_), np.asarray(est.class_prior_, dtype=np.float64)
    constant = est._strategy == "constant"
    index = int(np.flatnonzero(classes == est.constant)[0]) if constant else int(prior.argmax())
    proba = prior if est._strategy == "prior" else np.eye(len(classes))[index]
    outputs = {
        "label": b.op("ConstantRows", x, b.const("class_index", np.array(index, dtype=np.int32))),
        "probabilities": b.op("ConstantRows", x, b.const("class_proba", proba)),
    }
    return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)


@converts(dummy.DummyRegressor)
def dummy_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    constant = np.asarray(est.constant_, dtype=np.float64).reshape(-1)
    value = constant[0] if est.n_outputs_ == 1 else constant
    y = b.op("ConstantRows", x, b.const("constant", np.asarray(value)))
    std = b.op("ConstantRows", x, b.const("zero_std", np.zeros_like(value)))  # (predict's return_std: zeros)
    return Converted("regressor", {"predictions": y, "std": std}, ["predictions"])
