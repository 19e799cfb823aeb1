"""LightGBM: LGBMClassifier, LGBMRegressor, LGBMRanker and raw Boosters, read from the booster's JSON
dump (thresholds and leaf values printed to round-trip as doubles).

LightGBM compares doubles, ``x <= threshold``, after its missing-value rules: with missing type NaN a NaN
takes the default direction; with Zero, NaN reads as 0 and any |x| <= 1e-35 takes it; with None, NaN
reads as 0. A categorical split sends the listed categories left, everything else (negatives, unseen
categories, NaN whatever the missing type) right.

A model trained on a DataFrame's categorical columns keeps their categories (``pandas_categorical``);
those columns then take the category values, as a DataFrame gives them, and the runtime turns them into
LightGBM's codes: a value that is none of the categories becomes NaN, as LightGBM's pandas step makes it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, booster_metadata, model_ir
from mle_runtime.converters.trees import Tree, categories_as_codes, tree_ensemble
from mle_runtime.errors import UnsupportedModelError

_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape", "lambdarank", "rank_xendcg"}
_EXP = {"poisson", "gamma", "tweedie"}
# The JSON dump writes any |value| from this up as this (LightGBM's AvoidInf): an infinite threshold too.
DUMP_CLAMP = 1e300


def _tree(
    structure: dict[str, Any], exact: list[float] | None = None
) -> tuple[Tree, dict[int, tuple[float, list[int], list[float]]]]:
    """A dumped tree, numbered in preorder; ``source_leaf`` keeps LightGBM's leaf indices. With it, a
    linear tree's leaves: node -> (constant, features, coefficients). ``exact``: the tree's thresholds by
    split index as the model's text holds them, for the ones the dump clamps (see ``_text_thresholds``)."""
    left, right, feature, threshold, default_left, value = [], [], [], [], [], []
    linear: dict[int, tuple[float, list[int], list[float]]] = {}
    nan_as_zero, zero_missing, source_leaf = [], [], []
    categories: dict[int, tuple[np.ndarray, int, bool]] = {}
    stack: list[tuple[dict[str, Any], int | None, bool]] = [(structure, None, True)]
    while stack:
        node, parent, is_left = stack.pop()
        i = len(left)
        if parent is not None:
            (left if is_left else right)[parent] = i
        left.append(-1)
        right.append(-1)
        if "leaf_index" in node or "split_index" not in node:
            if "leaf_coeff" in node:
                features = [int(f) for f in node["leaf_features"]]
                linear[i] = (float(node["leaf_const"]), features, [float(c) for c in node["leaf_coeff"]])
            feature.append(0)
            threshold.append(np.inf)
            default_left.append(False)
            nan_as_zero.append(False)
            zero_missing.append(False)
            value.append(float(node["leaf_value"]))
            source_leaf.append(int(node.get("leaf_index", 0)))
            continue
        missing = node.get("missing_type", "None")
        feature.append(int(node["split_feature"]))
        value.append(0.0)
        source_leaf.append(-1)
        if node["decision_type"] == "==":
            cats = np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64)
            limit = int(cats.max()) + 1 if cats.size else 0
            categories[i] = (cats, limit, False)
            threshold.append(0.0)
            default_left.append(False)  # NaN goes right, whatever the missing type (measured: pred_leaf)
            nan_as_zero.append(False)
            zero_missing.append(False)
        elif node["decision_type"] == "<=":
            t = float(node["threshold"])
            threshold.append(exact[int(node["split_index"])] if exact is not None and abs(t) >= DUMP_CLAMP else t)
            default_left.append(bool(node["default_left"]))
            nan_as_zero.append(missing != "NaN")
            zero_missing.append(missing == "Zero")
        else:
            raise UnsupportedModelError(f"LightGBM decision type {node['decision_type']!r} is not supported")
        # right first so that the left subtree is numbered next (preorder)
        stack.append((node["right_child"], i, False))
        stack.append((node["left_child"], i, True))
    tree = Tree(
        left=np.array(left, dtype=np.int64),
        right=np.array(right, dtype=np.int64),
        feature=np.array(feature, dtype=np.int64),
        threshold=np.array(threshold, dtype=np.float64),
        default_left=np.array(default_left, dtype=bool),
        value=np.array(value, dtype=np.float64)[:, None],
        categories=categories,
        nan_as_zero=np.array(nan_as_zero, dtype=bool),
        zero_missing=np.array(zero_missing, dtype=bool),
        source_leaf=np.array(source_leaf, dtype=np.int64),
    )
    return tree, linear


def linear_leaves(trees: list[Tree], linear: list[dict[int, tuple[float, list[int], list[float]]]]) -> int:
    """Widen each linear tree's leaf values in place to [value, constant, coefficients..., features + 1...],
    padded to the most terms any leaf has (coefficient 0, feature 0: none); returns that count. With none, a
    leaf is its constant (what LightGBM predicts for it) and the trees stay plain."""
    terms = max((len(f) for leaves in linear for _, f, _ in leaves.values()), default=0)
    for tree, leaves in zip(trees, linear, strict=True):
        if not terms:
            for node, (constant, _, _) in leaves.items():
                tree.value[node, 0] = constant
            continue
        wide = np.zeros((len(tree.left), 2 + 2 * terms))
        wide[:, 0] = tree.value[:, 0]
        for node, (constant, features, coefficients) in leaves.items():
            wide[node, 1] = constant
            wide[node, 2 : 2 + len(coefficients)] = coefficients
            wide[node, 2 + terms : 2 + terms + len(features)] = np.add(features, 1)
        tree.value = wide
    return terms


def _booster(model: Any) -> tuple[Any, Any]:
    import lightgbm

    if isinstance(model, lightgbm.Booster):
        return model, None
    if isinstance(model, lightgbm.LGBMModel):
        return model.booster_, model
    raise UnsupportedModelError(f"{type(model).__qualname__} is not a LightGBM model")


def trees_of(model: Any, num_iteration: int | None = None) -> tuple[list[Tree], dict[str, Any]]:
    """The trees ``predict`` uses (up to ``num_iteration``, else the best iteration, else all) and the
    dump, whose "linear_terms" says how many terms a linear tree's leaves hold (0: not linear)."""
    booster, _ = _booster(model)
    if num_iteration is None and booster.best_iteration > 0:
        num_iteration = booster.best_iteration
    dump = booster.dump_model(num_iteration=num_iteration if num_iteration is not None else -1)
    exact = _text_thresholds(booster, dump, num_iteration)
    trees, linear = zip(
        *(_tree(t["tree_structure"], exact.get(t["tree_index"])) for t in dump["tree_info"]), strict=True
    )
    dump["linear_terms"] = linear_leaves(list(trees), list(linear)) if any(linear) else 0
    return list(trees), dump


def _text_thresholds(booster: Any, dump: dict[str, Any], num_iteration: int | None) -> dict[int, list[float]]:
    """Tree index -> its thresholds by split index, read from the model's text, where the dump shows one
    clamped: the JSON dump writes a threshold of +-inf (a split past the largest value a feature was
    seen with) as +-1e300, and LightGBM compares with the infinity (an input of inf goes left). None
    clamped (the usual case): empty, and the text is not made."""
    if not any(abs(t) >= DUMP_CLAMP for t in _dumped_thresholds(dump)):
        return {}
    text = booster.model_to_string(num_iteration=num_iteration if num_iteration is not None else -1)
    blocks = re.split(r"^Tree=(\d+)$", text.split("\nend of trees")[0], flags=re.MULTILINE)
    out = {}
    for tree, body in zip(blocks[1::2], blocks[2::2], strict=True):
        line = re.search(r"^threshold=(.*)$", body, re.MULTILINE)  # (a tree of one leaf has none)
        if line:
            out[int(tree)] = [float(v) for v in line.group(1).split()]
    return out


def _dumped_thresholds(dump: dict[str, Any]) -> list[float]:
    out, stack = [], [t["tree_structure"] for t in dump["tree_info"]]
    while stack:
        node = stack.pop()
        if node.get("decision_type") == "<=":
            out.append(float(node["threshold"]))
        stack.extend(node[k] for k in ("left_child", "right_child") if k in node)
    return out


def _pandas_categories(model: Any, dump: dict[str, Any]) -> dict[int, list[Any]]:
    """Column -> the categories LightGBM kept for a DataFrame's categorical column, in code order. LightGBM
    pairs them with the DataFrame's categorical columns in order; the model records which columns it
    splits as categories, and under ``categorical_feature="auto"`` those are the same columns."""
    kept = dump.get("pandas_categorical") or []
    if not kept:
        return {}
    booster, _ = _booster(model)
    found = re.search(r"^\[categorical_feature: ([0-9,]*)\]$", booster.model_to_string(), re.MULTILINE)
    columns = [int(c) for c in found.group(1).split(",") if c] if found else []
    names, infos = dump.get("feature_names") or [], dump.get("feature_infos") or {}

    def codes_fit(column: int, categories: list[Any]) -> bool:  # the codes the column was seen with
        info = infos.get(names[column], {}) if column < len(names) else {"values": [len(categories)]}
        return max(info.get("values") or [], default=-1) < len(categories)

    if len(columns) != len(kept) or not all(map(codes_fit, columns, kept)):
        raise UnsupportedModelError(
            f"LightGBM model trained on a DataFrame with {len(kept)} categorical columns, split as categories on "
            f"columns {columns}: which column holds which categories cannot be read from the model (an ordered "
            "categorical, or a categorical_feature list that is not the DataFrame's categorical columns)"
        )
    return dict(zip(columns, kept, strict=True))


def convert(model: Any, input_shape: tuple[int, ...] | None = None, num_iteration: int | None = None) -> ModelIR:
    import lightgbm

    b = GraphBuilder()
    converted, n_features, objective = build(model, b, None, input_shape, num_iteration)
    booster, wrapper = _booster(model)
    names = getattr(wrapper, "feature_names_in_", None)
    if names is None:  # (a Booster: the names it was trained with, where they were given)
        names = _given_names(booster.feature_name())
    metadata = booster_metadata("lightgbm", lightgbm.__version__, model, n_features, objective, names)
    return model_ir(b, converted, metadata)


def _given_names(names: list[str]) -> list[str] | None:
    """A Booster's feature names where training gave them (a DataFrame's columns); None for the ones
    LightGBM makes up (Column_0, Column_1, ...), which no input is checked against."""
    return None if names == [f"Column_{i}" for i in range(len(names))] else list(names)


def step_classes() -> list[type]:
    """The models that may be steps of a scikit-learn pipeline (converted by ``build`` on the step's input;
    the registry registers them when it first meets one)."""
    import lightgbm

    return [lightgbm.LGBMClassifier, lightgbm.LGBMRegressor, lightgbm.LGBMRanker]


def build(
    model: Any, b: GraphBuilder, x: str | None, input_shape: tuple[Any, ...] | None = None, num_iteration: Any = None
) -> tuple[Converted, int, str]:
    """The model's graph on ``x`` (None: a new model input of the model's width): its outputs, its number
    of features and its objective line."""
    _, wrapper = _booster(model)
    trees, dump = trees_of(model, num_iteration)
    n_features = int(dump["max_feature_idx"]) + 1
    if input_shape is not None and tuple(input_shape)[-1] != n_features:
        raise ValueError(f"input_shape {tuple(input_shape)} disagrees with the model's {n_features} features")
    per_iteration = int(dump["num_tree_per_iteration"])
    objective, *params = str(dump["objective"]).split()
    options = dict(p.split(":", 1) for p in params if ":" in p)

    if x is None:
        x = b.input("X", (None, n_features))
    categories = _pandas_categories(model, dump)
    codes = categories_as_codes(b, x, categories, "LightGBM") if categories else x
    terms = dump["linear_terms"]
    raw = tree_ensemble(b, codes, trees, n_features, per_iteration, compare_float32=False, linear_terms=terms)
    if dump.get("average_output"):  # random-forest mode averages the iterations
        raw = b.op("Div", raw, b.const("n_iterations", np.array(len(trees) // per_iteration, dtype=np.float64)))
    converted = _head(b, raw, objective, options, wrapper, per_iteration, sqrt="sqrt" in params)
    return converted, n_features, str(dump["objective"])


def _head(
    b: GraphBuilder, raw: str, objective: str, options: dict[str, str], wrapper: Any, per_iteration: int, sqrt: bool
) -> Converted:
    """The outputs from the raw sums, as LightGBM's objectives convert them (``sqrt``: a regression fitted
    to sqrt(|y|) with y's sign, ``reg_sqrt``, answers sign(x) * x * x)."""
    import lightgbm

    classifier = isinstance(wrapper, lightgbm.LGBMClassifier)
    sigma = float(options.get("sigmoid", 1))
    if objective in ("multiclass", "softmax"):
        decision, proba = raw, b.op("Softmax", raw)
    elif objective in ("multiclassova", "ovr", "multiclass_ova"):
        decision = raw
        proba = b.op("Sigmoid", raw if sigma == 1 else b.op("Mul", raw, b.const("sigmoid", np.array(sigma))))
    elif objective in ("binary", "cross_entropy", "xentropy"):
        decision = b.op("SqueezeLast", raw)
        scaled = decision if sigma == 1 else b.op("Mul", decision, b.const("sigmoid", np.array(sigma)))
        proba = b.op("ProbaPair", b.op("Sigmoid", scaled)) if classifier else b.op("Sigmoid", scaled)
    elif objective in ("cross_entropy_lambda", "xentlambda") and not classifier:
        score = b.op("SqueezeLast", raw)  # (its answer is log(1 + exp(x)), not a probability)
        value = b.op("Ufunc", b.op("Ufunc", score, name="exp"), name="log1p")
        return Converted("regressor", {"predictions": value, "decision": score}, ["predictions"])
    elif objective in _IDENTITY or objective in _EXP:
        score = b.op("SqueezeLast", raw) if per_iteration == 1 else raw
        value = b.op("Exp", score) if objective in _EXP else score
        if sqrt and objective in _IDENTITY:
            value = b.op("Mul", b.op("Mul", b.op("Ufunc", score, name="sign"), score), score)
        outputs = {"predictions": value} if value == score else {"predictions": value, "decision": score}
        return Converted("regressor", outputs, ["predictions"])
    else:
        raise UnsupportedModelError(f"LightGBM objective {objective!r} is not supported")
    if classifier:
        # LGBMClassifier.predict: argmax of predict_proba
        outputs = {"label": b.op("ArgMax", proba), "probabilities": proba, "decision": decision}
        return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(wrapper.classes_))
    return Converted("regressor", {"predictions": proba, "decision": decision}, ["predictions"])
