"""CatBoost: CatBoostClassifier, CatBoostRegressor and CatBoostRanker, read from the model's JSON form.

Each level of an oblivious tree (grow_policy SymmetricTree, the default) tests one float feature,
``float32(x) > border``, and sets one bit of the leaf index (split i, bit i). The trees of the Depthwise
and Lossguide policies are not symmetric: each node tests its own feature, going right when
``float32(x) > border``; they are walked as the other frameworks' trees are (converters/trees.py). NaN
reads as below every border (nan_mode Min) or above (Max). The sum of leaf values is scaled and shifted
by the model's ``scale_and_bias``. Categorical features become the runtime's host-side step
(``catboost_categories``): their counter features and one-hot tests reach the graph as extra input
columns that the trees' splits test like float features. Text and embedding features are refused by name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, booster_metadata, model_ir
from mle_runtime.converters.catboost_categories import CategoricalColumns, float_feature_columns
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
    # CatBoostRanker's losses: predict answers the raw sum
    "YetiRank",
    "YetiRankPairwise",
    "PairLogit",
    "PairLogitPairwise",
    "QueryRMSE",
    "QuerySoftMax",
    "StochasticFilter",
    "StochasticRank",
    "LambdaMart",
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


Split = Callable[[dict[str, Any]], tuple[int, float]]


def oblivious_arrays(doc: dict[str, Any], split: Split | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per tree and level the input column and border (``split``'s reading of each split; by default
    float features only), padded to the deepest tree with levels that never set their bit; leaf values
    (trees * 2**depth, width); and the width. (A tree with no split has ``"splits": null``.)"""
    split = split or split_reader(doc, None)
    trees = doc["oblivious_trees"]
    depth = max((len(t["splits"] or []) for t in trees), default=0)
    width = max(len(trees[0]["leaf_values"]) // (1 << len(trees[0]["splits"] or [])), 1) if trees else 1
    features = np.zeros((len(trees), depth), dtype=np.int32)
    borders = np.full((len(trees), depth), np.inf, dtype=np.float32)
    values = np.zeros((len(trees), 1 << depth, width), dtype=np.float64)
    for i, tree in enumerate(trees):
        for level, s in enumerate(tree["splits"] or []):
            features[i, level], borders[i, level] = split(s)
        leaves = np.asarray(tree["leaf_values"], dtype=np.float64).reshape(-1, width)
        values[i, : leaves.shape[0]] = leaves
    return features, borders, values.reshape(-1, width), width


def split_reader(doc: dict[str, Any], categories: CategoricalColumns | None) -> Split:
    """The input column a split tests and its border: a float feature's own column, a categorical
    feature's counter or one-hot column (see catboost_categories) where the model has ``categories``."""
    float_columns = float_feature_columns(doc)

    def read(split: dict[str, Any]) -> tuple[int, float]:
        kind = split.get("split_type")
        if kind == "FloatFeature":
            index = int(split["float_feature_index"])
            return float_columns.get(index, index), float(np.float32(split["border"]))
        if categories is not None and kind in ("OnlineCtr", "OneHotFeature"):
            return categories.column(split)
        raise UnsupportedModelError(
            f"CatBoost split of type {kind!r} is not supported: " + ", ".join(_named_categoricals(doc))
        )

    return read


def non_symmetric_trees(doc: dict[str, Any], split: Split | None = None) -> tuple[list[Tree], int]:
    """The Depthwise and Lossguide trees (nested nodes: "split" with "left" and "right", or a leaf's
    "value", a number or one per output) as Trees, node ids in depth-first order, and the width."""
    split = split or split_reader(doc, None)
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
            column, threshold = (0, 0.0) if leaf else split(node["split"])
            feature.append(column)
            border.append(threshold)
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
    converted, n_features, loss, categories = _build(model, b, None, input_shape)
    names = [str(n) for n in (model.feature_names_ or [])]
    given = names if any(n != str(i) for i, n in enumerate(names)) else None  # CatBoost names columns "0", "1", ...
    metadata = booster_metadata("catboost", catboost.__version__, model, n_features, loss, given)
    if categories is not None:
        metadata["catboost_categories"] = categories.entry(b)
    return model_ir(b, converted, metadata)


def step_classes() -> list[type]:
    """The models that may be steps of a scikit-learn pipeline (converted by ``build`` on the step's input;
    the registry registers them when it first meets one)."""
    import catboost

    return [catboost.CatBoostClassifier, catboost.CatBoostRegressor, catboost.CatBoostRanker]


def build(
    model: Any, b: GraphBuilder, x: str | None, input_shape: tuple[Any, ...] | None = None
) -> tuple[Converted, int, str]:
    """The model's graph on ``x`` (None: a new model input of the model's width): its outputs, its number
    of features and its loss."""
    converted, n_features, loss, _ = _build(model, b, x, input_shape)
    return converted, n_features, loss


def _build(
    model: Any, b: GraphBuilder, x: str | None, input_shape: tuple[Any, ...] | None
) -> tuple[Converted, int, str, CategoricalColumns | None]:
    """``build``, and the host-side step of the model's categorical features (None: it has none)."""
    import catboost

    if not isinstance(model, (catboost.CatBoostClassifier, catboost.CatBoostRegressor, catboost.CatBoost)):
        raise UnsupportedModelError(f"{type(model).__qualname__} is not a CatBoost model")
    if not model.is_fitted():
        raise ValueError(f"{type(model).__name__} is not fitted; call fit() before exporting")
    names = list(model.feature_names_ or [])
    for kind in ("text", "embedding"):  # (CatBoost cannot write their models as JSON)
        unsupported = [names[i] if i < len(names) else str(i) for i in getattr(model, f"get_{kind}_feature_indices")()]
        if unsupported:
            raise UnsupportedModelError(
                f"CatBoost models with {kind} features are not supported ({kind} feature "
                f"{', '.join(map(str, unsupported))}); only float and categorical features are"
            )
    doc = model_json(model)
    info = doc["features_info"]
    if any(info.get(k) for k in ("text_features", "embedding_features")):
        raise UnsupportedModelError(
            "CatBoost models with " + ", ".join(_named_categoricals(doc)) + " are not supported; "
            "only float and categorical features are"
        )
    float_features = info.get("float_features", [])
    every = [*float_features, *info.get("categorical_features", [])]
    n_features = max((f["flat_feature_index"] for f in every), default=-1) + 1
    categories = None
    if info.get("categorical_features"):
        if x is not None:  # (its strings would have to pass the steps before it)
            raise UnsupportedModelError(
                "a CatBoost model with " + ", ".join(_named_categoricals(doc)) + " cannot be a pipeline's "
                "later step; export the CatBoost model itself"
            )
        categories = CategoricalColumns(doc, n_features)
    split = split_reader(doc, categories)
    if input_shape is not None and tuple(input_shape)[-1] != n_features:
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with the model's {n_features} features")
    scale, bias = doc.get("scale_and_bias", [1.0, [0.0]])
    loss = doc["model_info"].get("params", {}).get("loss_function", {}).get("type", "RMSE")

    if "oblivious_trees" in doc:
        features, borders, values, width = oblivious_arrays(doc, split)
    else:
        trees, width = non_symmetric_trees(doc, split)
    # the graph reads the categorical step's columns after the model's own (see catboost_categories)
    columns = n_features + (categories.extra_columns if categories is not None else 0)
    if x is None:
        x = b.input("X", (None, columns))
    # NaN as CatBoost reads it: below every border (Min, the default) or above (Max)
    fill = np.full(columns, -np.inf)
    for f in float_features:
        if f.get("nan_value_treatment") == "AsTrue":
            fill[f["flat_feature_index"]] = np.inf
    source = b.op("Impute", x, b.const("nan_fill", fill), missing="nan")
    if "oblivious_trees" in doc:
        total = b.op(
            "ObliviousEnsemble",
            source,
            b.const("oblivious_features", features),
            b.const("oblivious_borders", borders),
            b.const("oblivious_leaf_values", values),
            n_outputs=width,
        )
    else:
        total = tree_ensemble(b, source, trees, columns, width, compare_float32=True)
    raw = b.op(
        "Add",
        b.op("Mul", total, b.const("scale", np.array(float(scale)))),
        b.const("bias", np.asarray(bias, dtype=np.float64).reshape(width)),
    )
    threshold = _logit_threshold(doc["model_info"].get("binclass_probability_threshold"))
    return _head(b, raw, loss, model, width, threshold), n_features, loss, categories


def _logit_threshold(probability: Any) -> float:
    """The raw value a binary or multilabel classifier's class must pass, as CatBoost reads it: the logit
    of the probability a user set (``set_probability_threshold``, kept in the model's info as a string;
    0.5 when absent or unparsable, where CatBoost warns)."""
    try:
        p = 0.5 if probability is None else float(probability)
    except ValueError:
        p = 0.5
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"CatBoost model with binclass_probability_threshold {probability!r}: not in [0, 1]")
    with np.errstate(divide="ignore"):
        return float(np.log(p / (1.0 - p))) if p < 1.0 else np.inf


def _passes(b: GraphBuilder, raw: str, threshold: float) -> str:
    """1 where the raw value exceeds the threshold (CatBoost's class rule, ``approx > threshold``), else 0."""
    if threshold == 0.0:
        return b.op("IsPositive", raw)
    return b.op("IsPositive", b.op("Sub", raw, b.const("class_threshold", np.array(threshold))))


def _head(b: GraphBuilder, raw: str, loss: str, model: Any, width: int, threshold: float) -> Converted:
    import catboost

    if isinstance(model, catboost.CatBoostClassifier):
        classes: Any = np.asarray(model.classes_)
        multilabel = False
        if loss in ("Logloss", "CrossEntropy"):
            decision = b.op("SqueezeLast", raw)
            outputs = {
                "label": _passes(b, decision, threshold),
                "probabilities": b.op("ProbaPair", b.op("Sigmoid", decision)),
                "decision": decision,
            }
        elif loss == "MultiClass":
            outputs = {"label": b.op("ArgMax", raw), "probabilities": b.op("Softmax", raw), "decision": raw}
        elif loss == "MultiClassOneVsAll":
            outputs = {"label": b.op("ArgMax", raw), "probabilities": b.op("Sigmoid", raw), "decision": raw}
        elif loss in ("MultiLogloss", "MultiCrossEntropy"):  # several labels, each its own sigmoid
            outputs = {"label": _passes(b, raw, threshold), "probabilities": b.op("Sigmoid", raw), "decision": raw}
            classes, multilabel = [np.array([0, 1], dtype=np.int64)] * width, True  # (predict: 0/1 per label)
        else:
            raise UnsupportedModelError(f"CatBoostClassifier with loss {loss!r} is not supported")
        return Converted("classifier", outputs, ["label", "probabilities"], classes=classes, multilabel=multilabel)
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
