"""CatBoost: CatBoostClassifier and CatBoostRegressor, read from the model's JSON form.

Each level of an oblivious tree (grow_policy SymmetricTree, the default) tests one float feature,
``float32(x) > border``, and sets one bit of the leaf index (split i, bit i). The trees of the Depthwise
and Lossguide policies are not symmetric: each node tests its own feature, going right when
``float32(x) > border``; they are walked as the other frameworks' trees are (converters/trees.py). NaN
reads as below every border (nan_mode Min) or above (Max). The sum of leaf values is scaled and shifted
by the model's ``scale_and_bias``. Categorical features and text
features use CatBoost's hashing and counters, which this converter refuses by name.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, booster_metadata, model_ir
from mle_runtime.converters.trees import Tree, tree_ensemble
from mle_runtime.errors import UnsupportedModelError

_IDENTITY = {
    "RMSE",
    "MAE",
    "Quantile",
    "MAPE",
    "Huber",
    "Lq",
    "Expectile",
    "LogLinQuantile",
    "SMAPE",
    "FairLoss",
    "LogCosh",
    "Cox",
}
_EXP = {"Poisson", "Tweedie"}


def model_json(model: Any) -> dict[str, Any]:
    """The model in CatBoost's JSON format (written to a temporary file: CatBoost has no in-memory form)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    finally:
        os.unlink(path)


def oblivious_arrays(doc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per tree and level the feature and border, padded to the deepest tree with levels that never set
    their bit; leaf values (trees * 2**depth, width); and the width."""
    float_features = {f["feature_index"]: f for f in doc["features_info"].get("float_features", [])}
    trees = doc["oblivious_trees"]
    depth = max((len(t["splits"]) for t in trees), default=0)
    width = max(len(trees[0]["leaf_values"]) // (1 << len(trees[0]["splits"])), 1) if trees else 1
    features = np.zeros((len(trees), depth), dtype=np.int32)
    borders = np.full((len(trees), depth), np.inf, dtype=np.float32)
    values = np.zeros((len(trees), 1 << depth, width), dtype=np.float64)
    for i, tree in enumerate(trees):
        for level, split in enumerate(tree["splits"]):
            features[i, level] = _split_feature(doc, split, float_features)
            borders[i, level] = np.float32(split["border"])
        leaves = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(-1, width)
        values[i, : leaves.shape[0]] = leaves
    return features, borders, values.reshape(-1, width), width


def _split_feature(doc: dict[str, Any], split: dict[str, Any], float_features: dict[int, Any]) -> int:
    """The input column a split reads (float features only)."""
    if split.get("split_type") != "FloatFeature":
        raise UnsupportedModelError(
            f"CatBoost split of type {split.get('split_type')!r} (categorical or text features, or their "
            "combinations) is not supported: " + ", ".join(_named_categoricals(doc)) + "; only float features are"
        )
    index = int(split["float_feature_index"])
    return int(float_features[index]["flat_feature_index"]) if index in float_features else index


def non_symmetric_trees(doc: dict[str, Any]) -> tuple[list[Tree], int]:
    """The Depthwise and Lossguide trees (nested nodes: "split" with "left" and "right", or a leaf's
    "value", a number or one per output) as Trees, node ids in depth-first order, and the width."""
    float_features = {f["feature_index"]: f for f in doc["features_info"].get("float_features", [])}
    trees, width = [], 1
    for nested in doc["trees"]:
        left: list[int] = []
        right: list[int] = []
        feature: list[int] = []
        border: list[float] = []
        value: list[np.ndarray] = []
        stack: list[tuple[dict[str, Any], int, str]] = [(nested, -1, "")]
        while stack:
            node, parent, side = stack.pop()
            i = len(left)
            if parent >= 0:
                (left if side == "left" else right)[parent] = i
            leaf = "split" not in node
            left.append(-1)
            right.append(-1)
            feature.append(0 if leaf else _split_feature(doc, node["split"], float_features))
            border.append(0.0 if leaf else float(np.float32(node["split"]["border"])))
            value.append(np.atleast_1d(np.asarray(node.get("value", 0.0), dtype=np.float64)))
            if not leaf:
                stack += [(node["right"], i, "right"), (node["left"], i, "left")]
        width = max(len(v) for v in value)
        trees.append(
            Tree(
                left=np.asarray(left, dtype=np.int64),
                right=np.asarray(right, dtype=np.int64),
                feature=np.asarray(feature, dtype=np.int64),
                threshold=np.asarray(border, dtype=np.float64),
                default_left=np.zeros(len(left), dtype=bool),  # (NaN is replaced by +-inf before the walk)
                value=np.stack([np.resize(v, width) for v in value]),
            )
        )
    return trees, width


def _named_categoricals(doc: dict[str, Any]) -> list[str]:
    info = doc["features_info"]
    names = []
    for kind in ("categorical_features", "text_features", "embedding_features"):
        for f in info.get(kind, []):
            names.append(f"{kind.split('_')[0]} feature {f.get('feature_id') or f.get('flat_feature_index')}")
    return names or ["a feature combination"]


def convert(model: Any, input_shape: tuple[int, ...] | None = None) -> ModelIR:
    import catboost

    b = GraphBuilder()
    converted, n_features, loss = build(model, b, None, input_shape)
    names = [str(n) for n in (model.feature_names_ or [])]
    given = names if any(n != str(i) for i, n in enumerate(names)) else None  # CatBoost names columns "0", "1", ...
    return model_ir(b, converted, booster_metadata("catboost", catboost.__version__, model, n_features, loss, given))


def step_classes() -> list[type]:
    """The models that may be steps of a scikit-learn pipeline (converted by ``build`` on the step's input;
    the registry registers them when it first meets one)."""
    import catboost

    return [catboost.CatBoostClassifier, catboost.CatBoostRegressor]


def build(
    model: Any, b: GraphBuilder, x: str | None, input_shape: tuple[Any, ...] | None = None
) -> tuple[Converted, int, str]:
    """The model's graph on ``x`` (None: a new model input of the model's width): its outputs, its number
    of features and its loss."""
    import catboost

    if not isinstance(model, (catboost.CatBoostClassifier, catboost.CatBoostRegressor, catboost.CatBoost)):
        raise UnsupportedModelError(f"{type(model).__qualname__} is not a CatBoost model")
    if not model.is_fitted():
        raise ValueError(f"{type(model).__name__} is not fitted; call fit() before exporting")
    doc = model_json(model)
    info = doc["features_info"]
    if any(info.get(k) for k in ("categorical_features", "text_features", "embedding_features")):
        raise UnsupportedModelError(
            "CatBoost models with " + ", ".join(_named_categoricals(doc)) + " are not supported; "
            "only float features are (encode the categories before training, or wait for a later version)"
        )
    float_features = info.get("float_features", [])
    n_features = max((f["flat_feature_index"] for f in float_features), default=-1) + 1
    if input_shape is not None and tuple(input_shape)[-1] != n_features:
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with the model's {n_features} features")
    scale, bias = doc.get("scale_and_bias", [1.0, [0.0]])
    loss = doc["model_info"].get("params", {}).get("loss_function", {}).get("type", "RMSE")

    if x is None:
        x = b.input("X", (None, n_features))
    # NaN as CatBoost reads it: below every border (Min, the default) or above (Max)
    fill = np.full(n_features, -np.inf)
    for f in float_features:
        if f.get("nan_value_treatment") == "AsTrue":
            fill[f["flat_feature_index"]] = np.inf
    source = b.op("Impute", x, b.const("nan_fill", fill), missing="nan")
    if "oblivious_trees" in doc:
        features, borders, values, width = oblivious_arrays(doc)
        total = b.op(
            "ObliviousEnsemble",
            source,
            b.const("oblivious_features", features),
            b.const("oblivious_borders", borders),
            b.const("oblivious_leaf_values", values),
            n_outputs=width,
        )
    else:
        trees, width = non_symmetric_trees(doc)
        total = tree_ensemble(b, source, trees, n_features, width, compare_float32=True)
    raw = b.op(
        "Add",
        b.op("Mul", total, b.const("scale", np.array(float(scale)))),
        b.const("bias", np.asarray(bias, dtype=np.float64).reshape(width)),
    )
    return _head(b, raw, loss, model, width), n_features, loss


def _head(b: GraphBuilder, raw: str, loss: str, model: Any, width: int) -> Converted:
    import catboost

    if isinstance(model, catboost.CatBoostClassifier):
        classes = np.asarray(model.classes_)
        if loss in ("Logloss", "CrossEntropy"):
            decision = b.op("SqueezeLast", raw)
            outputs = {
                "label": b.op("IsPositive", decision),
                "probabilities": b.op("ProbaPair", b.op("Sigmoid", decision)),
                "decision": decision,
            }
        elif loss == "MultiClass":
            outputs = {"label": b.op("ArgMax", raw), "probabilities": b.op("Softmax", raw), "decision": raw}
        elif loss == "MultiClassOneVsAll":
            outputs = {"label": b.op("ArgMax", raw), "probabilities": b.op("Sigmoid", raw), "decision": raw}
        else:
            raise UnsupportedModelError(f"CatBoostClassifier with loss {loss!r} is not supported")
        return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)
    if loss in ("MultiRMSE", "MultiQuantile"):  # (several targets, or one target's several quantiles)
        return Converted("regressor", {"predictions": raw}, ["predictions"])
    if loss == "RMSEWithUncertainty":
        # predict gives [mean, variance], the second raw value being half the log variance: exp(raw * [0, 2])
        # is [1, variance], and * [0, 1] + raw * [1, 0] puts the mean first (each product and sum exact)
        exponents = b.op("Exp", b.op("Mul", raw, b.const("log_variance", np.array([0.0, 2.0]))))
        variance = b.op("Mul", exponents, b.const("variance_column", np.array([0.0, 1.0])))
        mean = b.op("Mul", raw, b.const("mean_column", np.array([1.0, 0.0])))
        return Converted("regressor", {"predictions": b.op("Add", mean, variance), "decision": raw}, ["predictions"])
    if width != 1:
        raise UnsupportedModelError(f"CatBoost model with {width} outputs (loss {loss!r}) is not supported")
    score = b.op("SqueezeLast", raw)
    if loss in _EXP:
        return Converted("regressor", {"predictions": b.op("Exp", score), "decision": score}, ["predictions"])
    if loss in _IDENTITY or loss.startswith(("RMSE", "Quantile", "Expectile")):
        return Converted("regressor", {"predictions": score}, ["predictions"])
    raise UnsupportedModelError(f"CatBoost loss {loss!r} is not supported")
