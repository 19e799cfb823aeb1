"""Multi-layer perceptrons: Gemm and activation per layer, as ``_forward_pass_fast`` runs them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import neural_network as nn

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError

ACTIVATIONS = {
    "identity": None,
    "relu": "Relu",
    "tanh": "Tanh",
    "logistic": "Sigmoid",
    "exp": "Exp",
    "softmax": "Softmax",
}


def _forward(est: Any, b: GraphBuilder, x: str) -> str:
    for name in (est.activation, est.out_activation_):
        if name not in ACTIVATIONS:
            raise UnsupportedModelError(f"{type(est).__name__}: activation {name!r} is not supported")
    last = len(est.coefs_) - 1
    for i, (w, bias) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        x = b.op("Gemm", x, b.const(f"coefs{i}", w), b.const(f"intercepts{i}", bias))
        op = ACTIVATIONS[est.out_activation_ if i == last else est.activation]
        if op is not None:
            x = b.op(op, x)
    return x


@converts(nn.MLPClassifier)
def mlp_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    kind = est._label_binarizer.y_type_
    if kind not in ("binary", "multiclass", "multilabel-indicator"):
        raise UnsupportedModelError(f"MLPClassifier fitted on {kind} targets is not supported")
    out = _forward(est, b, x)
    if kind == "multilabel-indicator":  # a logistic output a label: on past 0.5, the indicator matrix
        label = b.op("IsPositive", b.op("Sub", out, b.const("half", np.array(0.5))))
        classes = [np.array([0, 1], dtype=np.int64)] * est.n_outputs_
        outputs = {"label": label, "probabilities": out}
        return Converted("classifier", outputs, ["label", "probabilities"], classes=classes, multilabel=True)
    if est.n_outputs_ == 1:  # a logistic output p: label p > 0.5 (LabelBinarizer's threshold), proba [1 - p, p]
        p = b.op("SqueezeLast", out)
        label = b.op("IsPositive", b.op("Sub", p, b.const("half", np.array(0.5))))
        probabilities = b.op("ProbaPair", p)
    else:
        label, probabilities = b.op("ArgMax", out), out
    outputs = {"label": label, "probabilities": probabilities}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


@converts(nn.MLPRegressor)
def mlp_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    out = _forward(est, b, x)
    if est.n_outputs_ == 1:
        out = b.op("SqueezeLast", out)
    return Converted("regressor", {"predictions": out}, ["predictions"])
