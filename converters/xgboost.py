"""XGBoost: XGBClassifier, XGBRegressor, XGBRanker, XGBRF* and raw Boosters (gbtree and dart), read from
the booster's own JSON model.

XGBoost compares float32 inputs as ``x < split``; that is ``x <= the float32 just below split``. Leaf
values, the DART tree weights and the base margin are float32 as XGBoost keeps them. A categorical
split sends the categories in its set right and the others left.

A model trained on a DataFrame's categorical columns (``enable_categorical``) keeps their categories
(XGBoost 3.1+); such a column then takes the category values, strings or numbers, as a DataFrame gives
them, and the runtime turns them into XGBoost's codes. A value that is none of the categories is refused,
as XGBoost refuses it ("Found a category not in the training set"; 3.2.0 still maps some of them to a
neighbouring category, dmlc/xgboost#12189).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, booster_metadata, model_ir
from mle_runtime.converters.trees import Tree, categories_as_codes, tree_ensemble, unknown_categories
from mle_runtime.errors import UnsupportedModelError

# Objective -> (link applied to the margin, how base_score becomes a margin).
_OBJECTIVES = {
    "binary:logistic": ("sigmoid", "logit"),
    "binary:logitraw": ("identity", "identity"),
    "binary:hinge": ("hinge", "identity"),
    "reg:logistic": ("sigmoid", "logit"),
    "reg:squarederror": ("identity", "identity"),
    "reg:squaredlogerror": ("identity", "identity"),
    "reg:pseudohubererror": ("identity", "identity"),
    "reg:absoluteerror": ("identity", "identity"),
    "reg:quantileerror": ("identity", "identity"),
    "count:poisson": ("exp", "log"),
    "reg:gamma": ("exp", "log"),
    "reg:tweedie": ("exp", "log"),
    "multi:softprob": ("softmax", "identity"),
    "multi:softmax": ("softmax", "identity"),
    "rank:pairwise": ("identity", "identity"),
    "rank:ndcg": ("identity", "identity"),
    "rank:map": ("identity", "identity"),
    # base_score is a hazard ratio (cox) or a time (aft): its margin is its log, as for poisson
    "survival:cox": ("exp", "log"),
    "survival:aft": ("exp", "log"),
}


def _floats(text: str) -> np.ndarray:
    """A JSON number or XGBoost 2+'s bracketed vector ``"[5E-1,2E-1]"``, as float32."""
    return np.array([float(v) for v in text.strip("[]").split(",") if v.strip()], dtype=np.float32)


def _tree(t: dict[str, Any], weight: float | None) -> Tree:
    """A tree; one of ``multi_strategy="multi_output_tree"`` holds a vector a leaf, its node's
    ``base_weights`` (a scalar leaf's value is its node's ``split_conditions``)."""
    left = np.asarray(t["left_children"], dtype=np.int64)
    split = np.asarray(t["split_conditions"], dtype=np.float32)
    width = int(t["tree_param"].get("size_leaf_vector", "1"))
    leaf = split.copy() if width == 1 else np.asarray(t["base_weights"], dtype=np.float32).reshape(len(left), width)
    if weight is not None:  # DART scales each tree's output by its weight, in float32
        leaf = (leaf * np.float32(weight)).astype(np.float32)
    categories = {}
    if any(t["split_type"]):
        sizes, segments, cats = t["categories_sizes"], t["categories_segments"], t["categories"]
        limit = 1 + max((int(c) for c in cats), default=0)
        for node, start, size in zip(t["categories_nodes"], segments, sizes, strict=True):
            right = np.asarray(cats[start : start + size], dtype=np.int64)
            left_set = np.setdiff1d(np.arange(limit), right)
            categories[int(node)] = (left_set, limit, True)
    return Tree(
        left=left,
        right=np.asarray(t["right_children"], dtype=np.int64),
        feature=np.asarray(t["split_indices"], dtype=np.int64),
        # x < s  <=>  x <= nextafter(s, -inf) for float32 x
        threshold=np.nextafter(split, np.float32(-np.inf)).astype(np.float64),
        default_left=np.asarray(t["default_left"], dtype=bool),
        value=leaf.astype(np.float64).reshape(len(left), width),
        categories=categories,
    )


def _categories(body: dict[str, Any]) -> dict[int, list[Any]]:
    """Feature -> the categories XGBoost kept for it, in the order of their codes (none before 3.1)."""
    out: dict[int, list[Any]] = {}
    for feature, encoding in enumerate(body.get("cats", {}).get("enc", [])):
        values = encoding.get("values") or []
        if not values:
            continue
        if "offsets" not in encoding:  # numeric categories
            out[feature] = list(values)
            continue
        data, offsets = bytes(v & 0xFF for v in values), encoding["offsets"]  # UTF-8 bytes (as int8)
        try:
            if offsets[-1] != len(data):
                raise ValueError(f"offsets end at {offsets[-1]}, the bytes at {len(data)}")
            out[feature] = [data[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
        except (ValueError, IndexError) as e:
            raise UnsupportedModelError(
                f"XGBoost kept the categories of feature {feature} damaged ({e}): XGBoost 3.2 stores only part "
                "of a non-ASCII category name. Train on ASCII category names, or on integer codes"
            ) from None
    return out


def _booster(model: Any) -> tuple[Any, Any]:
    """(Booster, the scikit-learn wrapper or None)."""
    import xgboost

    if isinstance(model, xgboost.Booster):
        return model, None
    if isinstance(model, xgboost.XGBModel):
        return model.get_booster(), model
    raise UnsupportedModelError(f"{type(model).__qualname__} is not an XGBoost model")


def _iteration_range(wrapper: Any, iteration_range: tuple[int, int] | None) -> tuple[int, int] | None:
    """The iterations predict uses: the caller's, else a wrapper's best iteration (early stopping). A raw
    Booster's predict uses every tree, whatever best iteration it records (``xgboost.train`` keeps them all)."""
    if iteration_range is not None:
        return tuple(iteration_range)  # type: ignore[return-value]
    best = getattr(wrapper, "best_iteration", None) if wrapper is not None else None
    return None if best is None else (0, int(best) + 1)


def convert(model: Any, input_shape: tuple[int, ...] | None = None, iteration_range: Any = None) -> ModelIR:
    import xgboost

    b = GraphBuilder()
    converted, n_features, objective, names = build(model, b, None, input_shape, iteration_range)
    metadata = booster_metadata("xgboost", xgboost.__version__, model, n_features, objective, names)
    return model_ir(b, converted, metadata)


def step_classes() -> list[type]:
    """The models that may be steps of a scikit-learn pipeline (converted by ``build`` on the step's input;
    the registry registers them when it first meets one)."""
    import xgboost

    return [
        xgboost.XGBClassifier,
        xgboost.XGBRegressor,
        xgboost.XGBRanker,
        xgboost.XGBRFClassifier,
        xgboost.XGBRFRegressor,
    ]


def _missing_marker(wrapper: Any) -> float | None:
    """The scikit-learn wrapper's ``missing`` value as float32 (None: NaN, the default, or a raw Booster,
    which keeps none)."""
    missing = None if wrapper is None else wrapper.missing
    if missing is None:
        return None
    try:
        marker = float(np.float32(missing))
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"XGBoost missing={missing!r} is not a number") from None
    return None if math.isnan(marker) else marker


def build(
    model: Any, b: GraphBuilder, x: str | None, input_shape: tuple[Any, ...] | None = None, iteration_range: Any = None
) -> tuple[Converted, int, str, Any]:
    """The model's graph on ``x`` (None: a new model input of the model's width): its outputs, its number
    of features, its objective and its feature names."""
    booster, wrapper = _booster(model)
    marker = _missing_marker(wrapper)
    learner = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
    objective = learner["objective"]["name"]
    if objective not in _OBJECTIVES:
        raise UnsupportedModelError(
            f"XGBoost objective {objective!r} is not supported; supported: {sorted(_OBJECTIVES)}"
        )
    link, base_link = _OBJECTIVES[objective]
    gb = learner["gradient_booster"]
    if gb["name"] not in ("gbtree", "dart", "gblinear"):
        raise UnsupportedModelError(f"XGBoost booster {gb['name']!r} is not supported (gbtree, dart and gblinear are)")
    params = learner["learner_model_param"]
    n_features = int(params["num_feature"])
    n_classes = max(int(params.get("num_class", "0")), 1)
    n_targets = int(params.get("num_target", "1"))
    n_outputs = max(n_classes, n_targets)  # (several targets, or classes: one tree per output an iteration)
    if input_shape is not None and tuple(input_shape)[-1] != n_features:
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with the model's {n_features} features")

    base = _floats(params["base_score"])
    if gb["name"] == "gblinear":  # (XGBoost's linear booster adds the first base score to every output)
        base = base[:1]
    base = np.broadcast_to(base, (n_outputs,)) if base.size in (1, n_outputs) else base
    with np.errstate(divide="ignore"):
        if base_link == "logit":
            margin0 = np.log(base / (np.float32(1) - base))
        elif base_link == "log":
            margin0 = np.log(base)
        else:
            margin0 = base
    if x is None:
        x = b.input("X", (None, n_features))
    if marker is not None:
        # XGBoost reads a value equal to ``missing`` (compared as float32, as its DMatrix stores values) as
        # missing, and NaN too
        x = b.op(
            "Impute", b.op("Float32Values", x), b.const("missing_as_nan", np.full(n_features, np.nan)), missing=marker
        )
    categories: dict[int, list[Any]] = {}
    if gb["name"] == "gblinear":
        total = _linear(b, x, gb["model"], n_features, n_outputs)
    else:
        body = gb["model"] if gb["name"] == "gbtree" else gb["gbtree"]["model"]
        trees = _ordered_trees(body, gb.get("weight_drop"), wrapper, booster, iteration_range, n_outputs)
        categories = _categories(body)
        codes = categories_as_codes(b, x, categories, "XGBoost") if categories else x
        total = tree_ensemble(b, codes, trees, n_features, n_outputs, compare_float32=True, value_dtype=np.float32)
    margin = b.op("Add", total, b.const("base_margin", np.asarray(margin0, dtype=np.float32)))
    if n_targets > 1:
        converted = _several_targets(b, margin, link, wrapper, n_targets)
    else:
        converted = _head(b, margin, link, wrapper, n_classes, objective)
    if categories:
        b.refuse_rows(
            unknown_categories(b, x, codes, sorted(categories)),
            "a value that is none of the categories XGBoost kept from training",
        )
    names = getattr(wrapper, "feature_names_in_", None)
    if names is None:
        names = learner.get("feature_names")
    return converted, n_features, objective, names


def _linear(b: GraphBuilder, x: str, model: dict[str, Any], n_features: int, n_outputs: int) -> str:
    """gblinear's margin before the base score: x times the weights plus the bias, a missing value (NaN)
    counting as 0, as XGBoost leaves it out of the sum."""
    weights = np.asarray(model["weights"], dtype=np.float32).reshape(n_features + 1, n_outputs)
    zero_missing = b.op("Impute", x, b.const("missing_as_zero", np.zeros(n_features)), missing="nan")
    return str(b.op("Gemm", zero_missing, b.const("linear_weights", weights[:-1]), b.const("linear_bias", weights[-1])))


def _ordered_trees(
    body: dict[str, Any], weights: Any, wrapper: Any, booster: Any, iteration_range: Any, n_outputs: int
) -> list[Tree]:
    """The trees of the iterations predict uses, ordered round-robin by output (class or target): tree t
    adds to output tree_info[t]; DART's tree weights applied."""
    indptr = [int(v) for v in body.get("iteration_indptr", [])]
    raw_trees, tree_info = body["trees"], [int(v) for v in body["tree_info"]]
    span = _iteration_range(wrapper, iteration_range)
    first, last = 0, len(raw_trees)
    if span is not None and indptr:
        begin, end = span
        if not 0 <= begin < end <= len(indptr) - 1:
            raise ValueError(f"iteration_range {span} is outside the model's {len(indptr) - 1} iterations")
        first, last = indptr[begin], indptr[end]
    if any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 for t in raw_trees):
        # multi_strategy="multi_output_tree": every tree adds a vector to all the outputs
        return [_tree(raw_trees[i], None if weights is None else weights[i]) for i in range(first, last)]
    order = round_robin(tree_info, first, last, n_outputs)
    return [_tree(raw_trees[i], None if weights is None else weights[i]) for i in order]


def round_robin(tree_info: list[int], first: int, last: int, n_outputs: int) -> list[int]:
    """Trees first..last-1 in the order the converter writes them: round-robin by output, tree t adding
    to output tree_info[t]."""
    by_output: list[list[int]] = [[] for _ in range(n_outputs)]
    for i in range(first, last):
        by_output[tree_info[i]].append(i)
    if len({len(c) for c in by_output}) != 1:
        raise UnsupportedModelError("XGBoost model with unequal numbers of trees per class")
    return [i for group in zip(*by_output, strict=True) for i in group]


def _several_targets(b: GraphBuilder, margin: str, link: str, wrapper: Any, n_targets: int) -> Converted:
    """(rows, targets) predictions of a multi-target model: each column's link; a multilabel XGBClassifier
    (binary:logistic on several labels) gives each label's probability and 1.0 where it passes 0.5, as its
    own predict does (floats)."""
    import xgboost

    if link == "sigmoid":
        value = b.op("Sigmoid", margin)
    elif link == "exp":
        value = b.op("Exp", margin)
    elif link == "identity":
        value = margin
    else:
        raise UnsupportedModelError(f"XGBoost with several targets and the {link} link is not supported")
    if isinstance(wrapper, xgboost.XGBClassifier):
        if link != "sigmoid":
            raise UnsupportedModelError("an XGBClassifier on several labels is supported with binary:logistic")
        label = b.op("IsPositive", b.op("Sub", value, b.const("half", np.array(0.5, dtype=np.float32))))
        outputs = {"label": label, "probabilities": value, "decision": margin}
        classes = [np.array([0.0, 1.0])] * n_targets  # (its predict gives the indicator matrix as floats)
        return Converted("classifier", outputs, ["label", "probabilities"], classes=classes, multilabel=True)
    outputs = {"predictions": value} if value == margin else {"predictions": value, "decision": margin}
    return Converted("regressor", outputs, ["predictions"])


def _head(b: GraphBuilder, margin: str, link: str, wrapper: Any, n_classes: int, objective: str) -> Converted:
    import xgboost

    classifier = isinstance(wrapper, xgboost.XGBClassifier)
    if n_classes > 1:
        proba = b.op("Softmax", margin)
        if classifier:
            classes = np.asarray(getattr(wrapper, "classes_", np.arange(n_classes)))
            if objective == "multi:softmax":  # (XGBClassifier.predict casts the booster's class index to int32)
                classes = classes.astype(np.int32)
            outputs = {"label": b.op("ArgMax", proba), "probabilities": proba, "decision": margin}
            return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)
        if objective == "multi:softmax":  # a raw booster predicts the class index
            return Converted("regressor", {"predictions": b.op("ArgMax", margin), "decision": margin}, ["predictions"])
        return Converted("regressor", {"predictions": proba, "decision": margin}, ["predictions"])
    score = b.op("SqueezeLast", margin)
    if link == "sigmoid":
        value = b.op("Sigmoid", score)
    elif link == "exp":
        value = b.op("Exp", score)
    elif link == "hinge":
        value = b.op("Cast", b.op("IsPositive", score), dtype="float")
    else:
        value = score
    if classifier:
        # XGBClassifier: predict_proba = [1 - p, p]; predict = p > 0.5
        half = b.const("half", np.array(0.5, dtype=np.float32))
        label = b.op("IsPositive", b.op("Sub", value, half))
        outputs = {"label": label, "probabilities": b.op("ProbaPair", value), "decision": score}
        classes = np.asarray(getattr(wrapper, "classes_", np.arange(2)))
        return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)
    outputs = {"predictions": value} if value == score else {"predictions": value, "decision": score}
    return Converted("regressor", outputs, ["predictions"])
