"""DummyClassifier and DummyRegressor: the same answer for every row (the strategies that are not
random: a class prior, the most frequent class, a constant; a mean, median, quantile or constant)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import dummy

from mle_runtime.converters._builder import Converted, GraphBuilder, as_built_labels
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError


@converts(dummy.DummyClassifier)
def dummy_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """With several outputs, each output's probabilities in a block of columns, its label in a column."""
    if est._strategy not in ("most_frequent", "prior", "constant"):
        raise UnsupportedModelError(f"DummyClassifier(strategy={est._strategy!r}) answers at random; not supported")
    several = est.n_outputs_ != 1
    classes = [np.asarray(c) for c in est.classes_] if several else [np.asarray(est.classes_)]
    priors = [np.asarray(p, dtype=np.float64) for p in (est.class_prior_ if several else [est.class_prior_])]
    constants = np.asarray(est.constant, dtype=object).reshape(-1) if est._strategy == "constant" else None
    indices, probas = [], []
    for k, (output_classes, prior) in enumerate(zip(classes, priors, strict=True)):
        index = int(np.flatnonzero(output_classes == constants[k])[0]) if constants is not None else int(prior.argmax())
        indices.append(index)
        probas.append(prior if est._strategy == "prior" else np.eye(len(output_classes))[index])
    if all(c.dtype == object for c in classes):
        # scikit-learn's labels here are an array built from the constants (strings become "<U", as wide as
        # the one answered), not the classes' object dtype; one "<U" as wide as the widest class keeps every
        # class whole
        built = [as_built_labels(c) for c in classes]
        width = np.result_type(*built)
        classes = [c.astype(width) for c in built]
    index_value = np.array(indices if several else indices[0], dtype=np.int32)
    outputs = {
        "label": b.op("ConstantRows", x, b.const("class_index", index_value)),
        "probabilities": b.op("ConstantRows", x, b.const("class_proba", np.concatenate(probas))),
    }
    return Converted("classifier", outputs, ["label", "probabilities"], classes=classes if several else classes[0])


@converts(dummy.DummyRegressor)
def dummy_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    constant = np.asarray(est.constant_, dtype=np.float64).reshape(-1)
    value = constant[0] if est.n_outputs_ == 1 else constant
    y = b.op("ConstantRows", x, b.const("constant", np.asarray(value)))
    std = b.op("ConstantRows", x, b.const("zero_std", np.zeros_like(value)))  # (predict's return_std: zeros)
    return Converted("regressor", {"predictions": y, "std": std}, ["predictions"])
