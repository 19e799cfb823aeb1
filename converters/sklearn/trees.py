"""Decision trees, forests, gradient boosting, histogram gradient boosting and isolation forests.

Every model becomes one ``TreeEnsemble`` node (see ``converters/trees.py``) plus the few elementwise
steps scikit-learn applies after summing: a division by the number of trees, an initial raw prediction,
a link function. Leaf values are computed here with scikit-learn's own numpy expressions, so that each
tree's contribution is the same float64 number scikit-learn adds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import ensemble, tree

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.converters.trees import Tree, categories_as_codes, tree_ensemble
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.inputs import is_missing_value


def _tree(t: Any, value: np.ndarray, features: np.ndarray | None = None) -> Tree:
    """A fitted ``sklearn.tree._tree.Tree`` in the canonical form (``features`` maps a bagged tree's
    columns back to the model's)."""
    feature = np.asarray(t.feature, dtype=np.int64)
    if features is not None:
        feature = np.where(feature >= 0, np.asarray(features)[np.maximum(feature, 0)], feature)
    return Tree(
        left=np.asarray(t.children_left, dtype=np.int64),
        right=np.asarray(t.children_right, dtype=np.int64),
        feature=feature,
        threshold=np.asarray(t.threshold, dtype=np.float64),
        default_left=np.asarray(t.missing_go_to_left, dtype=bool),
        value=value,
    )


def _class_probabilities(t: Any, n_classes: list[int]) -> np.ndarray:
    """Per-node class probabilities, normalized per output as DecisionTreeClassifier.predict_proba does;
    the outputs' columns side by side."""
    blocks = []
    for k, width in enumerate(n_classes):
        proba = np.array(t.value[:, k, :width], dtype=np.float64)
        normalizer = proba.sum(axis=1)[:, np.newaxis]
        normalizer[normalizer == 0.0] = 1.0
        proba /= normalizer
        blocks.append(proba)
    return np.concatenate(blocks, axis=1)


def _n_classes(est: Any) -> list[int]:
    return [int(n) for n in np.atleast_1d(est.n_classes_)]


def _sum_trees(b: GraphBuilder, x: str, trees: list[Tree], n_features: int, n_outputs: int) -> str:
    return tree_ensemble(b, x, trees, n_features, n_outputs, compare_float32=True)


def _classifier_outputs(b: GraphBuilder, proba: str, est: Any) -> Converted:
    """Labels and probabilities; a multi-output classifier's labels are (n, outputs), one argmax per
    output's block of probabilities."""
    if getattr(est, "n_outputs_", 1) > 1:
        label = b.op("SegmentArgMax", proba, sizes=_n_classes(est))
        classes: np.ndarray | list[np.ndarray] = [np.asarray(c) for c in est.classes_]
    else:
        label, classes = b.op("ArgMax", proba), np.asarray(est.classes_)
    outputs = {"label": label, "probabilities": proba}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)


def _regressor_outputs(b: GraphBuilder, predictions: str, n_outputs: int) -> Converted:
    if n_outputs == 1:
        predictions = b.op("SqueezeLast", predictions)
    return Converted("regressor", {"predictions": predictions}, ["predictions"])


@converts(tree.DecisionTreeClassifier, tree.ExtraTreeClassifier)
def decision_tree_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    t = _tree(est.tree_, _class_probabilities(est.tree_, _n_classes(est)))
    return _classifier_outputs(b, _sum_trees(b, x, [t], n_features, sum(_n_classes(est))), est)


@converts(tree.DecisionTreeRegressor, tree.ExtraTreeRegressor)
def decision_tree_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    t = _tree(est.tree_, np.array(est.tree_.value[:, :, 0], dtype=np.float64))
    return _regressor_outputs(b, _sum_trees(b, x, [t], n_features, est.n_outputs_), est.n_outputs_)


@converts(ensemble.RandomForestClassifier, ensemble.ExtraTreesClassifier)
def forest_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    trees = [_tree(e.tree_, _class_probabilities(e.tree_, _n_classes(est))) for e in est.estimators_]
    total = _sum_trees(b, x, trees, n_features, sum(_n_classes(est)))
    proba = b.op("Div", total, b.const("n_trees", np.array(len(trees), dtype=np.float64)))
    return _classifier_outputs(b, proba, est)


@converts(ensemble.RandomForestRegressor, ensemble.ExtraTreesRegressor)
def forest_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    trees = [_tree(e.tree_, np.array(e.tree_.value[:, :, 0], dtype=np.float64)) for e in est.estimators_]
    total = _sum_trees(b, x, trees, n_features, est.n_outputs_)
    mean = b.op("Div", total, b.const("n_trees", np.array(len(trees), dtype=np.float64)))
    return _regressor_outputs(b, mean, est.n_outputs_)


# scikit-learn's link of each GradientBoosting loss, by class name: how an init estimator's output becomes
# raw predictions (ops.ensemble.gradient_boosting_init)
_GB_INIT_LINKS = {"LogitLink": "logit", "HalfLogitLink": "half_logit", "MultinomialLogit": "multinomial_logit"}


def _gb_init(est: Any, b: GraphBuilder, x: str, n_features: int) -> str:
    """The initial raw predictions: a constant (K,) for 'zero' and the default init estimators (they do not
    read X), else the init estimator's predict_proba (classifiers) or predict (regressors) through the loss's
    link, computed as scikit-learn does on X's values as float32 (GradientBoosting's predict casts X first)."""
    init = est.init_
    if (isinstance(init, str) and init == "zero") or type(init).__name__ in ("DummyClassifier", "DummyRegressor"):
        constant = est._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
        return b.const("init", np.asarray(constant, dtype=np.float64))
    from mle_runtime.converters.sklearn import convert_step

    link_name = type(est._loss.link).__name__
    link = "identity" if link_name == "IdentityLink" else _GB_INIT_LINKS.get(link_name)
    if link is None:
        raise UnsupportedModelError(f"{type(est).__name__}: the link {link_name} of its loss is not supported")
    part = convert_step(init, b, b.op("Float32Values", x), n_features)
    role = "predictions" if link == "identity" else "probabilities"
    if role not in part.outputs:
        raise UnsupportedModelError(f"{type(est).__name__}: its init estimator {type(init).__name__} has no {role}")
    return b.op("GradientBoostingInit", part.outputs[role], link=link)


def _gb_raw(est: Any, b: GraphBuilder, x: str, n_features: int) -> str:
    stages = est.estimators_  # (n_iterations, K) of DecisionTreeRegressor
    trees = [
        _tree(t.tree_, est.learning_rate * np.array(t.tree_.value[:, :, 0], dtype=np.float64))
        for row in stages
        for t in row
    ]
    total = _sum_trees(b, x, trees, n_features, stages.shape[1])
    return b.op("Add", total, _gb_init(est, b, x, n_features))


def _boosted_classifier(b: GraphBuilder, raw: str, est: Any, *, or_zero: bool, exponential: bool = False) -> Converted:
    """A boosted classifier's outputs from its raw scores (rows, K): binary scores go through a sigmoid
    (of twice the score for the exponential loss) and pick the second class when positive (``or_zero``:
    also at 0), K classes through a softmax and an argmax."""
    classes = np.asarray(est.classes_)
    if len(classes) == 2:
        decision = b.op("SqueezeLast", raw)
        label = b.op("IsPositive", decision, or_zero=or_zero)
        score = b.op("Mul", decision, b.const("two", np.array(2.0))) if exponential else decision
        proba = b.op("BinaryProba", score)
    else:
        decision, label, proba = raw, b.op("ArgMax", raw), b.op("Softmax", raw)
    outputs = {"label": label, "probabilities": proba, "decision": decision}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=classes)


@converts(ensemble.GradientBoostingClassifier)
def gradient_boosting_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    # scikit-learn's GradientBoostingClassifier takes raw >= 0 as the second class
    raw = _gb_raw(est, b, x, n_features)
    return _boosted_classifier(b, raw, est, or_zero=True, exponential=est.loss == "exponential")


@converts(ensemble.GradientBoostingRegressor)
def gradient_boosting_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return _regressor_outputs(b, _gb_raw(est, b, x, n_features), 1)


def _hgb_tree(predictor: Any, feature_map: np.ndarray, limits: dict[int, int]) -> Tree:
    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].astype(bool)
    categories = {}
    for i in np.flatnonzero(nodes["is_categorical"].astype(bool) & ~is_leaf):
        words = predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]]
        bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
        # an unknown category is treated as missing
        missing_left = bool(nodes["missing_go_to_left"][i])
        categories[int(i)] = (np.flatnonzero(bits), limits[int(nodes["feature_idx"][i])], missing_left)
    return Tree(
        left=np.where(is_leaf, -1, nodes["left"].astype(np.int64)),
        right=np.where(is_leaf, -1, nodes["right"].astype(np.int64)),
        feature=feature_map[nodes["feature_idx"]],
        threshold=nodes["num_threshold"].astype(np.float64),
        default_left=nodes["missing_go_to_left"].astype(bool),
        value=nodes["value"].astype(np.float64)[:, None],
        categories=categories,
    )


def _hgb_inputs(est: Any, b: GraphBuilder, x: str, n_features: int) -> tuple[str, np.ndarray, dict[int, int]]:
    """The tensor the trees read, the map from the trees' feature indices to its columns, and the
    number of known categories of each categorical (tree-side) feature."""
    if est._preprocessor is None:
        return x, np.arange(n_features), {}
    is_categorical = np.asarray(est.is_categorical_, dtype=bool)
    feature_map = np.concatenate([np.flatnonzero(is_categorical), np.flatnonzero(~is_categorical)])
    encoder = est._preprocessor.named_transformers_["encoder"]
    columns = [int(c) for c in np.flatnonzero(is_categorical)]
    known = [[v for v in categories if not is_missing_value(v)] for categories in encoder.categories_]
    codes = categories_as_codes(b, x, dict(zip(columns, known, strict=True)), type(est).__name__)
    return codes, feature_map, {position: len(k) for position, k in enumerate(known)}


def _hgb_raw(est: Any, b: GraphBuilder, x: str, n_features: int) -> str:
    source, feature_map, limits = _hgb_inputs(est, b, x, n_features)
    trees = [_hgb_tree(p, feature_map, limits) for iteration in est._predictors for p in iteration]
    total = tree_ensemble(b, source, trees, n_features, est.n_trees_per_iteration_, compare_float32=False)
    return b.op("Add", total, b.const("baseline", np.asarray(est._baseline_prediction, np.float64).reshape(-1)))


@converts(ensemble.HistGradientBoostingClassifier)
def hist_gradient_boosting_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    # HistGradientBoostingClassifier takes raw > 0 as the second class
    return _boosted_classifier(b, _hgb_raw(est, b, x, n_features), est, or_zero=False)


@converts(ensemble.HistGradientBoostingRegressor)
def hist_gradient_boosting_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    raw = b.op("SqueezeLast", _hgb_raw(est, b, x, n_features))
    link = type(est._loss.link).__name__
    if link == "IdentityLink":
        predictions = raw
    elif link == "LogLink":
        predictions = b.op("Exp", raw)
    else:
        raise UnsupportedModelError(f"{type(est).__name__} with loss {est.loss!r} ({link}) is not supported")
    return Converted("regressor", {"predictions": predictions}, ["predictions"])


@converts(ensemble.IsolationForest)
def isolation_forest(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    from sklearn.ensemble._iforest import _average_path_length

    trees = []
    for e, features, lengths, averages in zip(
        est.estimators_,
        est.estimators_features_,
        est._decision_path_lengths,
        est._average_path_length_per_tree,
        strict=True,
    ):
        depth = (np.asarray(lengths, np.float64) + np.asarray(averages, np.float64) - 1.0)[:, None]
        trees.append(_tree(e.tree_, depth, features))
    depths = b.op("SqueezeLast", _sum_trees(b, x, trees, n_features, 1))
    denominator = len(est.estimators_) * _average_path_length([est._max_samples])
    scores = b.op("IsolationScore", depths, b.const("denominator", np.asarray(denominator, np.float64).reshape(())))
    decision = b.op("Sub", scores, b.const("offset", np.asarray(est.offset_, np.float64).reshape(())))
    label = b.op("IsPositive", decision, or_zero=True)  # predict: -1 where decision < 0, else 1
    outputs = {"label": label, "decision": decision, "scores": scores}
    return Converted("classifier", outputs, ["label", "decision"], classes=np.array([-1, 1]))


@converts(ensemble.RandomTreesEmbedding)
def random_trees_embedding(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """``transform``: each tree's leaf one-hot encoded in the columns of the fitted ``one_hot_encoder_``, a
    sparse tensor (a linear step after it reads one weight row per tree): tree t's leaves hold the column
    they stand for, so that the ensemble gives each row its T columns, one per tree."""
    trees, width = [], 0
    for t, leaves in zip(est.estimators_, est.one_hot_encoder_.categories_, strict=True):
        leaf_nodes = np.flatnonzero(t.tree_.children_left == -1)
        leaves = np.sort(np.asarray(leaves, dtype=np.int64))
        if not np.array_equal(leaves, leaf_nodes):
            raise UnsupportedModelError(
                f"{type(est).__name__}: a tree has leaves no training row reached, which scikit-learn's "
                "one_hot_encoder_ would refuse at transform"
            )
        column = np.full((t.tree_.node_count, 1), -1.0)  # (internal nodes: never reached as a leaf)
        column[leaf_nodes, 0] = width + np.arange(len(leaf_nodes))  # (the leaves are the encoder's categories)
        trees.append(_tree(t.tree_, column))
        width += len(leaves)
    columns = _sum_trees(b, x, trees, n_features, len(trees))
    ones = b.op("Clip", columns, low=1.0, high=1.0)  # each tree's column holds a one
    return transformed(b.sparse_tensor(b.op("Cast", columns, dtype="int32"), ones, width), width)
