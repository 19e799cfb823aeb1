"""Tree ensembles from XGBoost, LightGBM and CatBoost (scikit-learn's are in the conformance zoo):
answers against each framework's predict, per-tree leaves against its own leaf output at inputs placed
on every threshold and one ulp either side, NaN and infinities; options, refusals and file size."""

from __future__ import annotations

import functools
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import catboost
import jax
import jax.numpy as jnp
import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn import datasets, ensemble, tree
from sklearn.pipeline import make_pipeline
from trees_support import edge_inputs, our_leaves, ranks_of, scaled_error
from worker_groups import by_case

import mle_runtime as mle
from mle_runtime import reader as mle_reader
from mle_runtime.converters import catboost as cb_converter
from mle_runtime.converters import lightgbm as lgb_converter
from mle_runtime.converters import xgboost as xgb_converter
from mle_runtime.converters.sklearn import trees as sk_trees
from mle_runtime.ops.trees import LIGHTGBM_ZERO
from mle_runtime.writer import serialize

# LightGBM warns about parameters it overrides; that is LightGBM's business, not these tests'
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightgbm")
FRAMEWORK_OF = {"xgb": "xgboost", "lgb": "lightgbm", "cb": "catboost"}


def _data(kind: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "multiclass":
        X, y = datasets.make_classification(1500, 10, n_informative=6, n_classes=3, random_state=2)
    else:
        X, y = datasets.make_classification(1500, 10, n_informative=6, random_state=1)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:, 9] = rng.integers(0, 8, len(X))  # a categorical column for the models that use it
    X[:, 8] = np.where(rng.random(len(X)) < 0.3, 0.0, X[:, 8])  # zeros for LightGBM's zero-as-missing
    target = np.nan_to_num(X[:, 0]) * 2 + np.sin(np.nan_to_num(X[:, 1])) + (X[:, 9] % 3)
    X_test = X[1000:].copy()
    X_test[:50, 9] = rng.integers(-2, 14, 50)  # unseen categories and negatives
    return {
        "X": X[:1000],
        "y": y[:1000],
        "reg": target[:1000],
        "pos": np.exp(target[:1000] / 4),
        "two": np.column_stack([target[:1000], np.cos(np.nan_to_num(X[:1000, 2])) - target[:1000]]),
        "X_test": X_test,
    }


def _rank_groups(model: Any, data: dict[str, np.ndarray]) -> Any:
    if isinstance(model, xgboost.XGBRanker):
        kw: dict[str, Any] = {"qid": np.repeat(np.arange(50), 20)}
    elif isinstance(model, catboost.CatBoostRanker):
        kw = {"group_id": np.repeat(np.arange(50), 20)}
    else:
        kw = {"group": [20] * 50}
    return model.fit(data["X"], data["y"] + (data["reg"] > 1), **kw)


# id -> (make, data, target, fit extra)
XGB_TREES = dict(n_estimators=25, random_state=0)
XGB = dict(max_depth=4, **XGB_TREES)
LGB = dict(n_estimators=25, num_leaves=15, random_state=0, verbose=-1)
CB = dict(iterations=25, depth=4, random_seed=0, verbose=0, allow_writing_files=False)
CASES: dict[str, tuple[Callable[[], Any], str, str, dict[str, Any]]] = {
    "xgb-binary": (lambda: xgboost.XGBClassifier(**XGB), "binary", "y", {}),
    "xgb-multiclass": (lambda: xgboost.XGBClassifier(**XGB), "multiclass", "y", {}),
    "xgb-vector-leaves": (
        lambda: xgboost.XGBClassifier(multi_strategy="multi_output_tree", tree_method="hist", **XGB),
        "multiclass",
        "y",
        {},
    ),
    "xgb-logitraw": (lambda: xgboost.XGBClassifier(objective="binary:logitraw", **XGB), "binary", "y", {}),
    "xgb-regression": (lambda: xgboost.XGBRegressor(**XGB), "binary", "reg", {}),
    "xgb-logistic": (lambda: xgboost.XGBRegressor(objective="reg:logistic", **XGB), "binary", "y", {}),
    "xgb-absolute": (lambda: xgboost.XGBRegressor(objective="reg:absoluteerror", **XGB), "binary", "reg", {}),
    "xgb-poisson": (lambda: xgboost.XGBRegressor(objective="count:poisson", **XGB), "binary", "pos", {}),
    "xgb-gamma": (lambda: xgboost.XGBRegressor(objective="reg:gamma", **XGB), "binary", "pos", {}),
    "xgb-tweedie": (lambda: xgboost.XGBRegressor(objective="reg:tweedie", **XGB), "binary", "pos", {}),
    "xgb-cox": (lambda: xgboost.XGBRegressor(objective="survival:cox", **XGB), "binary", "pos", {}),
    "xgb-dart": (lambda: xgboost.XGBRegressor(booster="dart", rate_drop=0.3, **XGB), "binary", "reg", {}),
    "xgb-categorical": (
        lambda: xgboost.XGBClassifier(enable_categorical=True, feature_types=["q"] * 9 + ["c"], **XGB),
        "binary",
        "y",
        {},
    ),
    "xgb-ranker": (lambda: xgboost.XGBRanker(**XGB), "binary", "rank", {}),
    "xgb-deep": (lambda: xgboost.XGBClassifier(n_estimators=15, max_depth=9, random_state=0), "binary", "y", {}),
    "xgb-mixed": (  # trees in two split-table groups, the rest walked, three classes
        lambda: xgboost.XGBClassifier(max_depth=8, min_child_weight=3, **XGB_TREES),
        "multiclass",
        "y",
        {},
    ),
    "xgb-lossguide": (
        lambda: xgboost.XGBClassifier(grow_policy="lossguide", max_leaves=16, max_depth=0, **XGB_TREES),
        "multiclass",
        "y",
        {},
    ),
    "lgb-shallow": (
        lambda: lightgbm.LGBMRegressor(n_estimators=20, max_depth=3, zero_as_missing=True, random_state=0, verbose=-1),
        "binary",
        "reg",
        {"categorical_feature": [9]},
    ),
    "xgb-rf": (lambda: xgboost.XGBRFClassifier(n_estimators=20, max_depth=5, random_state=0), "multiclass", "y", {}),
    "xgb-softmax": (lambda: xgboost.XGBClassifier(objective="multi:softmax", **XGB), "multiclass", "y", {}),
    "xgb-hinge": (lambda: xgboost.XGBClassifier(objective="binary:hinge", **XGB), "binary", "y", {}),
    "xgb-pseudohuber": (
        lambda: xgboost.XGBRegressor(objective="reg:pseudohubererror", **XGB),
        "binary",
        "reg",
        {},
    ),
    "lgb-binary": (lambda: lightgbm.LGBMClassifier(**LGB), "binary", "y", {}),
    "lgb-linear": (lambda: lightgbm.LGBMRegressor(linear_tree=True, **LGB), "binary", "reg", {}),
    "lgb-linear-binary": (lambda: lightgbm.LGBMClassifier(linear_tree=True, **LGB), "binary", "y", {}),
    "lgb-linear-multiclass": (
        lambda: lightgbm.LGBMClassifier(linear_tree=True, n_estimators=10, num_leaves=7, random_state=0, verbose=-1),
        "multiclass",
        "y",
        {"categorical_feature": [9]},
    ),
    "lgb-categorical": (lambda: lightgbm.LGBMClassifier(**LGB), "binary", "y", {"categorical_feature": [9]}),
    "lgb-multiclass": (lambda: lightgbm.LGBMClassifier(**LGB), "multiclass", "y", {}),
    "lgb-ova": (lambda: lightgbm.LGBMClassifier(objective="multiclassova", **LGB), "multiclass", "y", {}),
    "lgb-regression": (lambda: lightgbm.LGBMRegressor(**LGB), "binary", "reg", {"categorical_feature": [9]}),
    "lgb-l1": (lambda: lightgbm.LGBMRegressor(objective="regression_l1", **LGB), "binary", "reg", {}),
    "lgb-huber": (lambda: lightgbm.LGBMRegressor(objective="huber", **LGB), "binary", "reg", {}),
    "lgb-quantile": (lambda: lightgbm.LGBMRegressor(objective="quantile", alpha=0.3, **LGB), "binary", "reg", {}),
    "lgb-poisson": (lambda: lightgbm.LGBMRegressor(objective="poisson", **LGB), "binary", "pos", {}),
    "lgb-gamma": (lambda: lightgbm.LGBMRegressor(objective="gamma", **LGB), "binary", "pos", {}),
    "lgb-tweedie": (lambda: lightgbm.LGBMRegressor(objective="tweedie", **LGB), "binary", "pos", {}),
    "lgb-sqrt": (lambda: lightgbm.LGBMRegressor(reg_sqrt=True, **LGB), "binary", "reg", {}),
    "lgb-cross-entropy-lambda": (
        lambda: lightgbm.LGBMRegressor(objective="cross_entropy_lambda", **LGB),
        "binary",
        "y",
        {},
    ),
    "lgb-zero-missing": (lambda: lightgbm.LGBMRegressor(zero_as_missing=True, **LGB), "binary", "reg", {}),
    "lgb-no-missing": (lambda: lightgbm.LGBMRegressor(use_missing=False, **LGB), "binary", "reg", {}),
    "lgb-rf": (
        lambda: lightgbm.LGBMRegressor(boosting_type="rf", bagging_freq=1, bagging_fraction=0.6, **LGB),
        "binary",
        "reg",
        {},
    ),
    "lgb-ranker": (lambda: lightgbm.LGBMRanker(**LGB), "binary", "rank", {}),
    "cb-binary": (lambda: catboost.CatBoostClassifier(**CB), "binary", "y", {}),
    "cb-nan-max": (lambda: catboost.CatBoostClassifier(nan_mode="Max", **CB), "binary", "y", {}),
    "cb-multiclass": (lambda: catboost.CatBoostClassifier(loss_function="MultiClass", **CB), "multiclass", "y", {}),
    "cb-one-vs-all": (
        lambda: catboost.CatBoostClassifier(loss_function="MultiClassOneVsAll", **CB),
        "multiclass",
        "y",
        {},
    ),
    "cb-regression": (lambda: catboost.CatBoostRegressor(**CB), "binary", "reg", {}),
    "cb-depthwise": (lambda: catboost.CatBoostClassifier(grow_policy="Depthwise", **CB), "multiclass", "y", {}),
    "cb-multi-rmse": (lambda: catboost.CatBoostRegressor(loss_function="MultiRMSE", **CB), "binary", "two", {}),
    "cb-uncertainty": (
        lambda: catboost.CatBoostRegressor(loss_function="RMSEWithUncertainty", **CB),
        "binary",
        "reg",
        {},
    ),
    "cb-lossguide": (
        lambda: catboost.CatBoostRegressor(grow_policy="Lossguide", max_leaves=12, nan_mode="Max", **CB),
        "binary",
        "reg",
        {},
    ),
    "cb-poisson": (lambda: catboost.CatBoostRegressor(loss_function="Poisson", **CB), "binary", "pos", {}),
    "cb-quantile": (lambda: catboost.CatBoostRegressor(loss_function="Quantile:alpha=0.3", **CB), "binary", "reg", {}),
    "cb-quantiles": (
        lambda: catboost.CatBoostRegressor(loss_function="MultiQuantile:alpha=0.1,0.5,0.9", **CB),
        "binary",
        "reg",
        {},
    ),
    "cb-logcosh": (lambda: catboost.CatBoostRegressor(loss_function="LogCosh", **CB), "binary", "reg", {}),
    "cb-ranker": (lambda: catboost.CatBoostRanker(**CB), "binary", "rank", {}),
    "cb-ranker-pairs": (lambda: catboost.CatBoostRanker(loss_function="PairLogit", **CB), "binary", "rank", {}),
}


@functools.cache
def fitted(case_id: str) -> tuple[Any, dict[str, np.ndarray]]:
    make, kind, target, extra = CASES[case_id]
    data = _data(kind)
    model = make()
    if target == "rank":
        return _rank_groups(model, data), data
    return model.fit(data["X"], data[target], **extra), data


@functools.cache
def exported(case_id: str, folder: Path) -> Path:
    path = folder / f"{case_id}.mle"
    result = mle.export_model(fitted(case_id)[0], path)
    assert result["success"] and result["framework"] == FRAMEWORK_OF[case_id.split("-")[0]]
    return path


def reference(model: Any, X: np.ndarray) -> list[np.ndarray]:
    if hasattr(model, "predict_proba"):
        return [np.asarray(model.predict(X)).reshape(len(X)), model.predict_proba(X)]
    return [model.predict(X)]


def assert_scaled(ours: np.ndarray, ref: np.ndarray, tol: float, what: str) -> None:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NaN positions")
    err = scaled_error(ours, ref)
    assert err <= tol, f"{what}: scaled error {err:.3g} > {tol:g}"


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("case_id", by_case(sorted(CASES)))
def test_matches_the_framework(case_id: str, precision: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    model, data = fitted(case_id)
    runtime = mle.load_model(exported(case_id, tmp_path_factory.getbasetemp()), precision=precision)
    # float32 mode is held to float32 inputs (a float64 input rounds before the comparison); float64 mode
    # to 1e-12 where the framework sums in float64 (XGBoost sums float32 leaves in float32)
    X = data["X_test"].astype(np.float32).astype(np.float64) if precision == "float32" else data["X_test"]
    tol = 1e-12 if precision == "float64" and not case_id.startswith("xgb") else 1e-5
    for n in (1, 7, len(X)):
        ours, ref = runtime.run([X[:n]]), reference(model, X[:n])
        if len(ref) == 2:
            np.testing.assert_array_equal(ours[0], ref[0], err_msg=f"{case_id} [{precision}, batch {n}]: labels")
            assert ours[0].dtype == ref[0].dtype, f"{case_id}: labels of dtype {ours[0].dtype}, not {ref[0].dtype}"
            assert_scaled(ours[1], ref[1], tol, f"{case_id} [{precision}, batch {n}]: probabilities")
        else:
            assert_scaled(ours[0], ref[0], tol, f"{case_id} [{precision}, batch {n}]: predictions")


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize(
    "case_id",
    by_case(
        ["xgb-binary", "xgb-categorical", "lgb-binary", "lgb-categorical", "lgb-linear", "cb-binary", "cb-depthwise"]
    ),
)
def test_infinities_are_numbers_as_the_frameworks_read_them(case_id: str, precision: str, tmp_path_factory) -> None:
    """The libraries' predict takes +-inf (a categorical column's too) and sends it past every threshold;
    so does the runtime, where it refuses infinities for models whose framework refuses them."""
    model, data = fitted(case_id)
    runtime = mle.load_model(exported(case_id, tmp_path_factory.getbasetemp()), precision=precision)
    X = data["X_test"].copy()
    rows = np.arange(len(X))
    X[rows % 5 == 0, rows[rows % 5 == 0] % X.shape[1]] = np.inf
    X[rows % 7 == 0, (rows[rows % 7 == 0] + 3) % X.shape[1]] = -np.inf
    ours, ref = runtime.run([X]), reference(model, X)
    tol = 1e-12 if precision == "float64" and not case_id.startswith("xgb") else 1e-5
    if len(ref) == 2:
        np.testing.assert_array_equal(ours[0], ref[0], err_msg=f"{case_id} [{precision}]: labels")
    assert_scaled(ours[-1], ref[-1], tol, f"{case_id} [{precision}]")


def _framework_leaves(case_id: str, model: Any, X: np.ndarray, path: Path) -> np.ndarray:
    """(our leaves mapped to ranks, the framework's leaves as ranks), (rows, trees)."""
    if case_id.startswith("xgb"):
        booster = model.get_booster()
        leaves = booster.predict(xgboost.DMatrix(X, feature_types=booster.feature_types), pred_leaf=True)
        raw = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]["gradient_booster"]
        trees = [xgb_converter._tree(t, None) for t in (raw.get("model") or raw["gbtree"]["model"])["trees"]]
        return ranks_of(trees, leaves.reshape(len(X), -1).astype(np.int64), path)
    if case_id.startswith("lgb"):
        trees, _ = lgb_converter.trees_of(model)
        return ranks_of(trees, model.predict(X, pred_leaf=True).reshape(len(X), -1), path)
    return np.asarray(model.calc_leaf_indexes(catboost.Pool(X)), dtype=np.int64)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize(
    "case_id",
    by_case(
        [
            "xgb-binary",
            "xgb-deep",
            "lgb-shallow",
            "xgb-multiclass",
            "xgb-categorical",
            "lgb-binary",
            "lgb-linear",
            "lgb-categorical",
            "lgb-zero-missing",
            "lgb-no-missing",
            "lgb-multiclass",
            "cb-binary",
            "cb-nan-max",
            "cb-multiclass",
        ]
    ),
)
def test_leaves_match_at_every_threshold(case_id: str, precision: str, tmp_path_factory) -> None:
    model, data = fitted(case_id)
    path = exported(case_id, tmp_path_factory.getbasetemp())
    # XGBoost refuses infinities
    X = edge_inputs(
        path, data["X_test"], 400, seed=1, float32=precision == "float32", inf=not case_id.startswith("xgb")
    )
    np.testing.assert_array_equal(
        our_leaves(path, X, precision), _framework_leaves(case_id, model, X, path), err_msg=f"{case_id} [{precision}]"
    )


@pytest.mark.parametrize("case_id", by_case(["cb-depthwise", "cb-lossguide"]))
def test_catboost_trees_that_are_not_oblivious_at_every_border(case_id: str, tmp_path_factory) -> None:
    """Depthwise and Lossguide trees, walked node by node: CatBoost's answers on inputs on every border, one
    ulp either side of it, and NaN (its leaf numbers are not the walk's, so answers, not leaves)."""
    model, data = fitted(case_id)
    path = exported(case_id, tmp_path_factory.getbasetemp())
    for precision, tol in (("float32", 1e-5), ("float64", 1e-12)):
        X = edge_inputs(path, data["X_test"], 400, seed=2, float32=precision == "float32", inf=False)
        runtime = mle.load_model(path, precision=precision)
        ours, ref = runtime.run([X]), reference(model, X)
        if len(ref) == 2:
            np.testing.assert_array_equal(ours[0], ref[0], err_msg=f"{case_id} [{precision}]: labels at the borders")
        assert_scaled(ours[-1], ref[-1], tol, f"{case_id} [{precision}] at the borders")


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("case_id", by_case(["xgb-deep", "xgb-categorical", "lgb-zero-missing", "lgb-categorical"]))
def test_paired_and_separate_node_reads_reach_the_framework_leaves(
    case_id: str, paired: bool, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A node's word and float32 threshold read as one 64-bit record, or as two arrays: the same leaves
    as the framework's, on inputs at every threshold, NaN and infinities included."""
    from mle_runtime.ops import trees as tree_ops

    monkeypatch.setattr(tree_ops, "PAIR_MIN_STEPS_PER_NODE", 0 if paired else 1 << 62)
    monkeypatch.setattr(tree_ops, "SPLIT_TABLE_MIN_PAIRS", 1 << 62)  # (the walk's reads are the subject)
    reads = []
    unpaired = tree_ops._unpaired
    monkeypatch.setattr(tree_ops, "_unpaired", lambda *a: reads.append(1) or unpaired(*a))
    model, data = fitted(case_id)
    path = exported(case_id, tmp_path_factory.getbasetemp())
    X = edge_inputs(path, data["X_test"], 300, seed=4, float32=True, inf=not case_id.startswith("xgb"))
    ours = our_leaves(path, X, "float32")
    assert bool(reads) == paired
    np.testing.assert_array_equal(ours, _framework_leaves(case_id, model, X, path), err_msg=f"{case_id} {paired}")


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: ensemble.RandomForestClassifier(20, random_state=0),
        lambda: ensemble.ExtraTreesRegressor(10, random_state=0),
        lambda: ensemble.GradientBoostingClassifier(n_estimators=20, random_state=0),
        lambda: ensemble.IsolationForest(n_estimators=10, max_features=0.6, random_state=0),
    ],
    ids=["forest", "extra-trees", "gradient-boosting", "isolation-forest"],
)
def test_sklearn_leaves_match_apply(make, precision: str, tmp_path: Path) -> None:
    X, y = datasets.make_classification(1500, 8, n_informative=5, random_state=3)
    model = make().fit(X[:1000], y[:1000])
    path = tmp_path / "model.mle"
    mle.export_model(model, path)
    X_edge = edge_inputs(path, X[1000:], 400, seed=2, float32=precision == "float32", nan=False, inf=False)
    estimators = np.asarray(model.estimators_).reshape(-1)
    features = getattr(model, "estimators_features_", [None] * len(estimators))
    trees = [sk_trees._tree(e.tree_, e.tree_.value[:, 0, :1], f) for e, f in zip(estimators, features, strict=True)]
    columns = [
        e.apply((X_edge if f is None else X_edge[:, f]).astype(np.float32))
        for e, f in zip(estimators, features, strict=True)
    ]
    np.testing.assert_array_equal(our_leaves(path, X_edge, precision), ranks_of(trees, np.stack(columns, axis=1), path))


@pytest.mark.parametrize(
    "make",
    [
        lambda: tree.DecisionTreeRegressor(max_depth=3),
        lambda: ensemble.RandomForestClassifier(5, random_state=0),
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=5),
        lambda: xgboost.XGBRegressor(n_estimators=5),
        lambda: lightgbm.LGBMRegressor(n_estimators=5, verbose=-1),
    ],
    ids=["decision-tree", "forest", "hist-gradient-boosting", "xgboost", "lightgbm"],
)
def test_trees_of_a_constant_target_are_single_leaves(make, tmp_path: Path) -> None:
    """A constant target grows trees of one leaf (depth 0, no split to read): the file loads and answers
    the constant, in both precisions, at every batch size's strategy."""
    X = np.random.default_rng(0).normal(size=(300, 4))
    y = np.zeros(300, dtype=int) if "Classifier" in type(make()).__name__ else np.full(300, 2.5)
    model = make().fit(X, y)
    mle.export_model(model, tmp_path / "model.mle")
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "model.mle", precision=precision)
        for n in (1, 7, 1000, 20000):
            X_n = np.resize(X, (n, 4))
            np.testing.assert_allclose(runtime.predict(X_n), model.predict(X_n), rtol=1e-6, err_msg=f"{n} rows")


def test_iteration_ranges(tmp_path: Path) -> None:
    data = _data("binary")
    X = data["X_test"].astype(np.float32)
    xgb_model = xgboost.XGBRegressor(
        n_estimators=30,
        early_stopping_rounds=3,
        eval_metric="rmse",
        **{k: v for k, v in XGB.items() if k != "n_estimators"},
    )
    xgb_model.fit(data["X"][:800], data["reg"][:800], eval_set=[(data["X"][800:], data["reg"][800:])], verbose=False)
    assert xgb_model.best_iteration < 29
    mle.export_model(xgb_model, tmp_path / "best.mle")
    assert_scaled(mle.load_model(tmp_path / "best.mle").predict(X), xgb_model.predict(X), 1e-5, "best iteration")
    mle.export_xgboost_model(xgb_model, tmp_path / "first5.mle", iteration_range=(0, 5))
    assert_scaled(
        mle.load_model(tmp_path / "first5.mle").predict(X),
        xgb_model.predict(X, iteration_range=(0, 5)),
        1e-5,
        "iteration_range",
    )
    with pytest.raises(ValueError, match="iteration_range"):
        mle.export_xgboost_model(xgb_model, tmp_path / "bad.mle", iteration_range=(0, 500))

    lgb_model = lightgbm.LGBMRegressor(**LGB).fit(data["X"], data["reg"])
    mle.export_lightgbm_model(lgb_model, tmp_path / "lgb7.mle", num_iteration=7)
    assert_scaled(
        mle.load_model(tmp_path / "lgb7.mle", precision="float64").predict(data["X_test"]),
        lgb_model.predict(data["X_test"], num_iteration=7),
        1e-12,
        "num_iteration",
    )


def test_xgboost_trees_with_nodes_their_pruning_deleted(tmp_path: Path) -> None:
    """XGBoost's pruning (gamma) leaves deleted nodes in a tree's arrays, unreachable: shallow trees laid
    out as perfect heaps must not place them (one took a real leaf's slot: answers 0.17 off)."""
    data = _data("binary")
    model = xgboost.XGBRegressor(
        n_estimators=6, max_depth=3, tree_method="exact", gamma=20.0, min_child_weight=0, reg_lambda=10, random_state=0
    ).fit(data["X"], data["reg"])
    raw = json.loads(bytes(model.get_booster().save_raw(raw_format="json")))["learner"]["gradient_booster"]
    assert any(int(t["tree_param"]["num_deleted"]) for t in raw["model"]["trees"]), "no deleted node: proves nothing"
    path = tmp_path / "pruned.mle"
    mle.export_model(model, path)
    X = edge_inputs(path, data["X_test"], 300, seed=3, float32=True, inf=False)
    for precision in ("float32", "float64"):
        assert_scaled(mle.load_model(path, precision=precision).predict(X), model.predict(X), 1e-5, precision)
        np.testing.assert_array_equal(our_leaves(path, X, precision), _framework_leaves("xgb", model, X, path))


def test_raw_boosters(tmp_path: Path) -> None:
    data = _data("binary")
    X = data["X_test"].astype(np.float32)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(data["X"], data["y"]), num_boost_round=10
    )
    mle.export_model(booster, tmp_path / "xgb.mle")
    assert_scaled(mle.load_model(tmp_path / "xgb.mle").predict(X), booster.predict(xgboost.DMatrix(X)), 1e-5, "xgb")
    # early stopping: the booster records its best iteration, and its predict still uses every tree
    for kind in ("gbtree", "dart"):
        params = {"objective": "reg:squarederror", "max_depth": 6, "eta": 1.0, "booster": kind}
        train, valid = (
            xgboost.DMatrix(data["X"][:500], data["reg"][:500]),
            xgboost.DMatrix(data["X"][500:], data["reg"][500:]),
        )
        stopped = xgboost.train(params, train, 100, evals=[(valid, "v")], early_stopping_rounds=2, verbose_eval=False)
        assert stopped.best_iteration + 1 < stopped.num_boosted_rounds()
        mle.export_model(stopped, tmp_path / "stopped.mle")
        expected = stopped.predict(xgboost.DMatrix(X))
        assert_scaled(mle.load_model(tmp_path / "stopped.mle").predict(X), expected, 1e-5, f"xgb {kind}, stopped early")
    lgb_booster = lightgbm.train(
        {"objective": "regression", "verbose": -1}, lightgbm.Dataset(data["X"], data["reg"]), num_boost_round=10
    )
    mle.export_model(lgb_booster, tmp_path / "lgb.mle")
    assert_scaled(mle.load_model(tmp_path / "lgb.mle").predict(X), lgb_booster.predict(X), 1e-5, "lgb")
    # accelerated failure time: interval-censored times, a third of them with no upper bound
    times = xgboost.DMatrix(data["X"])
    times.set_float_info("label_lower_bound", data["pos"])
    times.set_float_info("label_upper_bound", np.where(np.arange(len(data["pos"])) % 3 == 0, np.inf, data["pos"]))
    aft = xgboost.train({"objective": "survival:aft", "max_depth": 3}, times, num_boost_round=10)
    mle.export_model(aft, tmp_path / "aft.mle")
    assert_scaled(mle.load_model(tmp_path / "aft.mle").predict(X), aft.predict(xgboost.DMatrix(X)), 1e-5, "aft")


def test_framework_files_export_by_path_and_keep_their_feature_names(tmp_path: Path) -> None:
    """export_model takes a framework's own file by its path (not a pickle: unpickling runs code); a
    Booster trained on a DataFrame keeps its column names, so a reordered DataFrame is refused rather
    than read by position (LightGBM's own predict reads it by position: wrong answers), and one trained on
    an array (LightGBM names its columns Column_0 ...) takes any."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400) * 5, "c": rng.normal(size=400)})
    target = (frame["a"] + frame["b"] / 5 > 0).to_numpy().astype(float)
    named = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(frame, target), 10)
    bare = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(frame.to_numpy(), target), 10)
    xgb = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(frame, target), 10)
    named.save_model(tmp_path / "named.txt")
    bare.save_model(tmp_path / "bare.txt")
    xgb.save_model(tmp_path / "xgb.json")
    for name, want in (
        ("named.txt", named.predict(frame)),
        ("bare.txt", bare.predict(frame.to_numpy())),
        ("xgb.json", xgb.predict(xgboost.DMatrix(frame))),
    ):
        mle.export_model(tmp_path / name, tmp_path / f"{name}.mle")
        runtime = mle.load_model(tmp_path / f"{name}.mle")
        assert_scaled(runtime.predict(frame), want, 1e-5, name)
        if name == "bare.txt":
            assert_scaled(runtime.predict(frame[["c", "a", "b"]]), bare.predict(frame[["c", "a", "b"]]), 1e-5, name)
        else:
            with pytest.raises(ValueError, match="different order"):
                runtime.predict(frame[["c", "a", "b"]])
    joblib.dump(named, tmp_path / "named.joblib")
    with pytest.raises(mle.UnsupportedModelError, match="a pickle is not loaded here"):
        mle.export_model(tmp_path / "named.joblib", tmp_path / "never.mle")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        mle.export_model(tmp_path / "absent.json", tmp_path / "never.mle")


@pytest.mark.parametrize("booster", ["gbtree", "gblinear"])
def test_xgboost_reads_its_missing_marker_and_nan_as_missing(booster: str, tmp_path: Path) -> None:
    data = _data("binary")
    X = np.where(np.isnan(data["X"]), -1.0, data["X"])
    model = xgboost.XGBRegressor(
        booster=booster, n_estimators=10, missing=-1.0, **({"max_depth": 3} if booster == "gbtree" else {})
    )
    model.fit(X, data["reg"])
    rows = data["X_test"][:200]
    queries = np.vstack([np.where(np.isnan(rows), -1.0, rows), rows])  # the marker, then NaN, where data lacks
    mle.export_model(model, tmp_path / "m.mle")
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "m.mle", precision=precision)
        assert_scaled(runtime.predict(queries), model.predict(queries), 1e-5, f"missing=-1 [{precision}]")


def test_forest_file_is_at_most_a_quarter_of_joblib(tmp_path: Path) -> None:
    X, y = datasets.make_classification(3000, 20, n_informative=10, random_state=4)
    model = ensemble.RandomForestClassifier(30, random_state=0).fit(X, y)
    result = mle.export_model(model, tmp_path / "forest.mle")
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    assert result["file_size_bytes"] <= 0.25 * buffer.tell(), (result["file_size_bytes"], buffer.tell())
    runtime = mle.load_model(tmp_path / "forest.mle", precision="float64")
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
    assert_scaled(runtime.predict_proba(X), model.predict_proba(X), 1e-12, "forest")


@pytest.mark.parametrize("by_tables", [True, False])
@pytest.mark.parametrize(
    "case_id",
    by_case(
        ["lgb-binary", "lgb-zero-missing", "lgb-no-missing", "lgb-multiclass", "lgb-rf", "xgb-lossguide", "xgb-mixed"]
    ),
)
def test_split_tables_and_the_walk_reach_the_framework_leaves(
    case_id: str, by_tables: bool, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The split tables (every split compared at once, leaves cleared from a bit set) and the walk: the
    framework's leaves on inputs at every threshold, NaN, zeros and infinities included, and its
    predictions; whichever way the batch goes."""
    from mle_runtime.ops import trees as tree_ops

    monkeypatch.setattr(tree_ops, "SPLIT_TABLE_MIN_PAIRS", 1 if by_tables else 1 << 62)
    uses = []
    positions = tree_ops._SplitTableWalk.positions
    monkeypatch.setattr(tree_ops._SplitTableWalk, "positions", lambda *a: uses.append(1) or positions(*a))
    model, data = fitted(case_id)
    path = exported(case_id, tmp_path_factory.getbasetemp())
    node = next(n for n in mle_reader.read_mle(path).graph["nodes"] if n["op"] == "TreeEnsemble")
    assert node["attrs"].get("split_groups")
    X = edge_inputs(path, data["X_test"], 300, seed=5, float32=True, inf=not case_id.startswith("xgb"))
    X[::7, 8] = 0.0  # zeros, which LightGBM's zero-as-missing sends the missing-value way
    np.testing.assert_array_equal(our_leaves(path, X, "float32"), _framework_leaves(case_id, model, X, path))
    X = X[~np.isinf(X).any(axis=1)]  # (LightGBM's runtime refuses infinities, as LightGBM does)
    for n in (1, 40, len(X)):
        ours, ref = mle.load_model(path, cache=False).run([X[:n]]), reference(model, X[:n])
        assert_scaled(ours[-1], ref[-1], 1e-5, f"{case_id} at {n} rows")
    assert bool(uses) == by_tables


@pytest.mark.parametrize("rows", [100, 300, 2500])
def test_oblivious_trees_reach_catboosts_leaves_in_every_chunking(rows: int, tmp_path_factory) -> None:
    """A batch of one chunk read as is (100 rows), cut in two so that its columns are contiguous (300),
    and chunked with padding (2,500): CatBoost's leaves and predictions in each."""
    model, data = fitted("cb-multiclass")
    path = exported("cb-multiclass", tmp_path_factory.getbasetemp())
    X = np.resize(data["X_test"], (rows, data["X_test"].shape[1])).astype(np.float32)
    np.testing.assert_array_equal(our_leaves(path, X, "float32"), _framework_leaves("cb-multiclass", model, X, path))
    runtime = mle.load_model(path)
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X).reshape(rows))
    assert_scaled(runtime.predict_proba(X), model.predict_proba(X), 1e-5, f"cb-multiclass at {rows} rows")


def test_catboost_json_and_raw_leaf_layout_agree() -> None:
    model, _ = fitted("cb-multiclass")
    features, borders, values, width = cb_converter.oblivious_arrays(cb_converter.model_json(model))
    assert width == 3 and values.shape == (features.shape[0] * 2 ** features.shape[1], 3)
    assert borders.dtype == np.float32


@pytest.mark.parametrize("loss", ["Logloss", "MultiLogloss", "MultiCrossEntropy"])
@pytest.mark.parametrize("threshold", [None, 0.8, 0.15, 1.0])
def test_catboost_class_threshold_and_several_labels(loss: str, threshold: float | None, tmp_path: Path) -> None:
    """A binary or multilabel CatBoostClassifier's labels pass the probability threshold a user set
    (set_probability_threshold: its raw value against the threshold's logit), read from the model and from
    its .cbm file; multilabel models give CatBoost's 0/1 matrix and each label's probability."""
    data = _data("binary")
    X, X_test = data["X"], data["X_test"]
    labels = np.column_stack([data["y"], np.nan_to_num(X[:, 0]) > 0.3, np.nan_to_num(X[:, 1]) < 0])
    model = catboost.CatBoostClassifier(loss_function=loss, **CB)
    model.fit(X, data["y"] if loss == "Logloss" else labels.astype(int))
    if threshold is not None:
        model.set_probability_threshold(threshold)
    model.save_model(str(tmp_path / "model.cbm"))
    expected_labels, expected_proba = model.predict(X_test), model.predict_proba(X_test)
    if threshold not in (None, 1.0):  # (a threshold the test's rows do not cross would prove nothing)
        assert 0 < np.mean(expected_labels) < 1
    for source in (model, tmp_path / "model.cbm"):
        path = tmp_path / "model.mle"
        mle.export_model(source, path)
        for precision in ("float32", "float64"):
            runtime = mle.load_model(path, precision=precision)
            what = f"{loss}, threshold {threshold}, {type(source).__name__}, {precision}"
            labels_given = runtime.predict(X_test)
            assert labels_given.dtype == expected_labels.dtype, what
            np.testing.assert_array_equal(labels_given, expected_labels, err_msg=what)
            assert_scaled(runtime.predict_proba(X_test), expected_proba, 1e-5, what)
    if loss == "Logloss" and threshold is not None:  # a stack labels each model by its own threshold
        other = catboost.CatBoostClassifier(loss_function=loss, **CB).fit(X, data["y"])
        other.set_probability_threshold(0.4)
        mle.export_model(other, tmp_path / "other.mle")
        stacked = mle.stack([tmp_path / "model.mle", tmp_path / "other.mle"]).predict(X_test)
        np.testing.assert_array_equal(stacked, [expected_labels, other.predict(X_test)])


def test_cli_exports_the_frameworks_own_files(tmp_path: Path) -> None:
    data = _data("binary")
    X = data["X_test"].astype(np.float32)
    xgb_model, lgb_model, cb_model = fitted("xgb-binary")[0], fitted("lgb-regression")[0], fitted("cb-binary")[0]
    xgb_model.save_model(tmp_path / "xgb.json")
    xgb_model.save_model(tmp_path / "xgb.ubj")
    lgb_model.booster_.save_model(tmp_path / "lgb.txt")
    cb_model.save_model(str(tmp_path / "cb.cbm"))
    cb_model.save_model(str(tmp_path / "cb.json"), format="json")
    expected = {
        "xgb.json": xgb_model.predict_proba(X)[:, 1],
        "xgb.ubj": xgb_model.predict_proba(X)[:, 1],
        "lgb.txt": lgb_model.predict(X),
        "cb.cbm": cb_model.predict_proba(X),
        "cb.json": cb_model.predict_proba(X),
    }
    mle_bin = Path(sys.executable).parent / "mle-export"
    for name, want in expected.items():
        out = subprocess.run([str(mle_bin), name, f"{name}.mle"], capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "runs code" not in out.stderr  # no pickle was read
        runtime = mle.load_model(tmp_path / f"{name}.mle")
        got = runtime.predict_proba(X) if name.startswith("cb") else runtime.run([X])[0]
        assert_scaled(got, want, 1e-5, name)
    (tmp_path / "broken.ubj").write_bytes(b"{not ubjson")
    out = subprocess.run([str(mle_bin), "broken.ubj", "b.mle"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1 and "not a readable xgboost model" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("after, levels_left", [(1, 0), (4, 0), (16, 0), (4, 99)])
def test_compaction_paths_agree_with_sklearn(
    after: int, levels_left: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Compacting the open (tree, row) pairs (when they fit a quarter, and again from there), walking them
    all until they fit (at level 1 nearly all are open) and not compacting (too few levels left) give
    scikit-learn's answers."""
    from mle_runtime.ops import trees as tree_ops

    monkeypatch.setattr(tree_ops, "COMPACT_AFTER", after)
    monkeypatch.setattr(tree_ops, "COMPACT_MIN_LEVELS_LEFT", levels_left)
    monkeypatch.setattr(tree_ops, "COMPACT_MIN_PAIRS", 16)
    X, y = datasets.make_classification(1200, 8, n_informative=6, random_state=5)
    model = ensemble.RandomForestClassifier(12, random_state=0).fit(X[:800], y[:800])
    mle.export_model(model, tmp_path / "forest.mle")
    runtime = mle.load_model(tmp_path / "forest.mle", precision="float64", cache=False)
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
    assert_scaled(runtime.predict_proba(X), model.predict_proba(X), 1e-12, f"compact after {after}")


@pytest.mark.parametrize(
    "n, p, capacity",
    [(1000, 0.1, 250), (200, 0.9, 190), (4097, 0.5, 1024), (64, 0.0, 16), (96, 1.0, 24), (40, 1.0, 48)],
)
def test_open_slots_are_the_true_entries_in_order(n: int, p: float, capacity: int) -> None:
    """The compaction's indices: the True entries of a flag array in order, then the first False one (a
    pair at its leaf: it pads); past the capacity, the first ``capacity`` of them (the walk then goes on
    without moving, on the count)."""
    from mle_runtime.ops.trees import _exclusive_prefix, _open_slots

    flags = np.random.default_rng(n).random(n) < p
    index, count = jax.jit(_open_slots, static_argnums=1)(jnp.asarray(flags), capacity)
    true = np.flatnonzero(flags)
    assert int(count) == len(true)
    kept = min(len(true), capacity)
    np.testing.assert_array_equal(np.asarray(index)[:kept], true[:kept])
    padding = np.flatnonzero(~flags)[0] if not flags.all() else 0
    assert (np.asarray(index)[kept:] == padding).all()
    counts = np.random.default_rng(0).integers(0, 33, 70_000).astype(np.int32)
    before, total = jax.jit(_exclusive_prefix)(jnp.asarray(counts))
    np.testing.assert_array_equal(np.asarray(before), np.cumsum(counts) - counts)
    assert int(total) == counts.sum()


@pytest.mark.parametrize(
    "make",
    [
        lambda: tree.DecisionTreeClassifier(max_depth=8, random_state=0),
        lambda: tree.ExtraTreeClassifier(random_state=0),
        lambda: ensemble.RandomForestClassifier(10, random_state=0),
        lambda: ensemble.ExtraTreesClassifier(10, random_state=0),
    ],
    ids=["tree", "extra-tree", "forest", "extra-trees"],
)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_multi_output_classifiers(make, precision: str, tmp_path: Path) -> None:
    X, y = datasets.make_classification(1200, 8, n_informative=6, n_classes=3, random_state=6)
    targets = np.c_[np.array([10, 20, 30])[y], (X[:, 0] > 0).astype(int) * 7, (X[:, 1] > X[:, 2]).astype(int) - 1]
    model = make().fit(X[:800], targets[:800])
    mle.export_model(model, tmp_path / "multi.mle")
    runtime = mle.load_model(tmp_path / "multi.mle", precision=precision)
    X_test = X[800:].astype(np.float32) if precision == "float32" else X[800:]
    labels = runtime.predict(X_test)
    np.testing.assert_array_equal(labels, model.predict(X_test))
    assert labels.dtype == model.predict(X_test).dtype
    ours, theirs = runtime.predict_proba(X_test), model.predict_proba(X_test)
    assert len(ours) == len(theirs) == 3
    for k in range(3):
        assert_scaled(ours[k], theirs[k], 1e-12 if precision == "float64" else 1e-5, f"output {k}")
    assert runtime.run([X_test])[1].shape == (len(X_test), sum(len(c) for c in model.classes_))


@pytest.mark.parametrize("framework", ["sklearn", "lightgbm"])
def test_two_words_a_node_when_indices_do_not_fit_one(framework: str, monkeypatch, tmp_path: Path) -> None:
    """Large trees over many features store feature/flags and child in two int32 words a node; forced
    here by lowering the packing limit."""
    from mle_runtime.converters import trees as tree_ir

    monkeypatch.setattr(tree_ir, "PACKED_WORD_BITS", 8)
    data = _data("binary")
    if framework == "sklearn":
        model: Any = ensemble.RandomForestRegressor(5, random_state=0).fit(np.nan_to_num(data["X"]), data["reg"])
        X = np.nan_to_num(data["X_test"])
    else:
        model = lightgbm.LGBMRegressor(**LGB).fit(data["X"], data["reg"], categorical_feature=[9])
        X = data["X_test"]
    mle.export_model(model, tmp_path / "wide.mle")
    runtime = mle.load_model(tmp_path / "wide.mle", precision="float64", cache=False)
    tensors = mle_reader.read_mle(tmp_path / "wide.mle").tensors
    assert next(a for name, a in tensors.items() if name.startswith("tree_nodes")).ndim == 2
    assert_scaled(runtime.predict(X), model.predict(X), 1e-12, f"{framework} two-word nodes")


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [("depth", 10**9, "depth"), ("n_outputs", 3, "cannot make 3 outputs"), ("feature_bits", 40, "feature_bits")],
)
def test_a_hostile_layout_is_a_value_error_not_a_hang(attr: str, value: int, message: str, tmp_path: Path) -> None:
    X, y = datasets.make_classification(300, 6, random_state=0)
    mle.export_model(ensemble.RandomForestClassifier(3, random_state=0).fit(X, y), tmp_path / "ok.mle")
    mf = mle_reader.read_mle(tmp_path / "ok.mle")
    graph = json.loads(json.dumps(mf.graph))
    next(n for n in graph["nodes"] if n["op"] == "TreeEnsemble")["attrs"][attr] = value
    chunks = serialize(mf.metadata, graph, dict(mf.tensors))
    (tmp_path / "bad.mle").write_bytes(b"".join(bytes(c) for c in chunks))
    runtime = mle.load_model(tmp_path / "bad.mle", cache=False)
    with pytest.raises(ValueError, match=message):
        runtime.run([X])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0),
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=30, random_state=0),
        lambda: lightgbm.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, random_state=0),
    ],
    ids=["hgb-classifier", "hgb-regressor", "lightgbm"],
)
def test_float64_inputs_between_float32_neighbours_of_thresholds(make, tmp_path: Path) -> None:
    """Trees that split in float64, float32 precision, float64 inputs placed on thresholds, one float64 ulp
    and one float32 ulp either side: the narrowing step (mle_runtime/narrowing.py) sends each row down
    the framework's branches."""
    X, y = datasets.make_classification(3000, 6, n_informative=4, random_state=5)
    model = make().fit(X[:2000], y[:2000])
    path = tmp_path / "model.mle"
    mle.export_model(model, path)
    runtime = mle.load_model(path)
    X_edge = edge_inputs(path, X[2000:], 600, seed=4, float32=False, nan=False, inf=False)
    # values between t and a float32 neighbour: the plain cast would send some of them the other way
    (fix,) = runtime._narrowing.values()
    plain = X_edge.astype(np.float32)
    narrowed = plain.copy()
    fix.apply(X_edge, narrowed)
    assert (narrowed != plain).any(), "no edge value needed narrowing: the test would prove nothing"
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(runtime.predict(X_edge), model.predict(X_edge))
        np.testing.assert_allclose(runtime.predict_proba(X_edge), model.predict_proba(X_edge), rtol=1e-5, atol=1e-6)
    else:
        expected = model.predict(X_edge)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(runtime.predict(X_edge), expected, rtol=1e-5, atol=1e-6 * scale)


def test_lightgbm_splits_of_numbers_from_nan_at_an_infinite_threshold(tmp_path: Path) -> None:
    """A split of every number from NaN holds the threshold inf, which LightGBM's JSON dump writes as
    1e300: inf (and anything past 1e300) goes left with the numbers, as LightGBM sends it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 2))
    X[rng.random(1000) < 0.3, 1] = np.nan
    model = lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1)
    model.fit(X, np.isnan(X[:, 1]) ^ (X[:, 0] > 1))
    assert "threshold=inf" in model.booster_.model_to_string()
    X_far = np.array([[0.0, np.inf], [2.0, np.inf], [0.0, 1e301], [2.0, -np.inf], [0.0, np.nan], [0.0, 1.0]])
    mle.export_model(model, tmp_path / "model.mle")
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "model.mle", precision=precision)
        X_in = X_far if precision == "float64" else X_far[X_far[:, 1] != 1e301]  # (1e301: no float32)
        np.testing.assert_array_equal(runtime.predict(X_in), model.predict(X_in), err_msg=precision)
        np.testing.assert_allclose(runtime.predict_proba(X_in), model.predict_proba(X_in), rtol=1e-6, err_msg=precision)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_float64_inputs_next_to_lightgbms_zero(zero_as_missing: bool, tmp_path: Path) -> None:
    """LightGBM reads |x| <= kZeroThreshold (1e-35f) as 0 before its splits: float64 inputs one float64
    ulp past it read as numbers there, though float32 rounds them onto it. Float32 precision answers as
    LightGBM does on each side."""
    rng = np.random.default_rng(0)
    X = np.where(rng.random((2000, 3)) < 0.4, 0.0, rng.normal(size=(2000, 3)))
    y = (X[:, 0] > 0) ^ (X[:, 1] == 0)
    model = lightgbm.LGBMClassifier(n_estimators=20, zero_as_missing=zero_as_missing, verbose=-1).fit(X, y)
    mle.export_model(model, tmp_path / "model.mle")
    z = LIGHTGBM_ZERO
    near = np.array([z, np.nextafter(z, 1), np.nextafter(z, -1), z / 2, 0.0])
    values = np.concatenate([near, -near])
    X_edge = np.array(np.meshgrid(values, values, [-1.0, 0.0, 1.0])).reshape(3, -1).T
    expected = model.predict_proba(X_edge)
    assert len(np.unique(np.round(expected[:, 1], 6))) > 2, "the rows take one path: the test would prove nothing"
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "model.mle", precision=precision)
        np.testing.assert_array_equal(runtime.predict(X_edge), model.predict(X_edge), err_msg=precision)
        np.testing.assert_allclose(runtime.predict_proba(X_edge), expected, rtol=1e-5, atol=1e-7, err_msg=precision)


def test_float64_inputs_on_thresholds_through_a_column_transformer(tmp_path: Path) -> None:
    """HistGradientBoosting after a ColumnTransformer that passes numeric columns through (beside an
    OrdinalEncoder's codes) splits the input's own values: float32 precision narrows float64 inputs for
    it as for a tree reading the input (the file names the input column each of the tree's columns holds).
    Rows on every threshold, one float64 ulp and one float32 step either side. (It did not: 1 to 10% of
    such rows took the other branch, a probability 0.87 off on training rows.)"""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"s": pd.Series(rng.choice(["a", "b", "c"], 800), dtype=object), "u": rng.normal(size=800)}
    ).assign(v=lambda d: np.round(rng.normal(size=800), 2))
    y = (frame["u"] + frame["v"] > 0) ^ (frame["s"] == "a")
    encode = ColumnTransformer([("num", "passthrough", ["u", "v"]), ("cat", OrdinalEncoder(), ["s"])])
    model = make_pipeline(encode, ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(frame, y)
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    splits = [
        (int(node["feature_idx"]), float(node["num_threshold"]))
        for predictors in model[-1]._predictors
        for predictor in predictors
        for node in predictor.nodes
        if not node["is_leaf"] and node["feature_idx"] < 2
    ]
    rows = frame.sample(len(splits) * 5, replace=True, random_state=1).reset_index(drop=True)
    for k, (feature, t) in enumerate(splits):
        step32 = [float(np.nextafter(np.float32(t), np.float32(s))) for s in (-np.inf, np.inf)]
        for j, value in enumerate([t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), *step32]):
            rows.loc[5 * k + j, ["u", "v"][feature]] = value
    assert runtime._narrowing, "nothing narrowed: the test would prove nothing"
    np.testing.assert_array_equal(runtime.predict(rows), model.predict(rows))
    np.testing.assert_allclose(runtime.predict_proba(rows), model.predict_proba(rows), rtol=1e-5, atol=1e-6)


def test_narrowing_sends_every_value_below_the_thresholds_float64_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The narrowing's screen (hashed bits looked up a block of rows at a time) lets through every value
    that could have crossed a threshold: after it, each float32 value has as many float32 thresholds below
    it as its float64 value has float64 thresholds, for values on, beside and between thresholds, signed
    zeros and values of columns with no split, over several blocks."""
    from mle_runtime import narrowing

    rng = np.random.default_rng(7)
    t64 = {f: np.unique(np.concatenate([rng.uniform(-2, 2, 150), [0.0]])) for f in (0, 2, 3)}
    fix = narrowing.SplitNarrowing(t64)
    columns = []
    for f in range(4):
        t = t64.get(f, rng.uniform(-2, 2, 150))
        on = rng.choice(t, 900)
        beside = np.nextafter(on, rng.choice([-np.inf, np.inf], 900))
        step32 = np.nextafter(on.astype(np.float32), rng.choice([-np.inf, np.inf], 900).astype(np.float32))
        between = on + (step32.astype(np.float64) - on) * rng.uniform(0, 1, 900)
        values = np.concatenate([on, beside, between, rng.uniform(-2, 2, 900), [0.0, -0.0] * 50])
        columns.append(rng.permutation(values))
    wide = np.stack(columns, axis=1)
    narrow = wide.astype(np.float32)
    monkeypatch.setattr(narrowing, "HASH_BLOCK_ROWS", 1000)
    fix.apply(wide, narrow)
    changed = 0
    for f, t in t64.items():
        t32 = narrowing.to_float32_down(t)
        np.testing.assert_array_equal(np.searchsorted(t32, narrow[:, f]), np.searchsorted(t, wide[:, f]))
        changed += int((narrow[:, f] != wide[:, f].astype(np.float32)).sum())
    assert changed > 0, "no value needed narrowing: the test would prove nothing"
    np.testing.assert_array_equal(narrow[:, 1], wide[:, 1].astype(np.float32))  # (no split: left as cast)


@pytest.mark.parametrize(
    "scaler", ["standard", "robust", "max-abs", "normalizer", "min-max", "polynomial-standard", "spline", "quantile"]
)
def test_trees_after_a_scaler_split_its_values_as_scikit_learn_does(scaler: str, tmp_path: Path) -> None:
    """HistGradientBoosting compares float64 values with thresholds that are often training values: in
    float64 precision the transformer's values must be scikit-learn's to the last bit. XLA, left to itself,
    multiplies by a divisor's reciprocal and fuses a product into the sum after it: 1 ulp off for a third
    and a quarter of the values, which sent training rows down the other branch. (In float32 precision a
    computed tensor is not narrowed: README, "Exactness".)"""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        Normalizer,
        PolynomialFeatures,
        QuantileTransformer,
        RobustScaler,
        SplineTransformer,
        StandardScaler,
    )

    make = {
        "standard": StandardScaler,
        "robust": RobustScaler,
        "max-abs": MaxAbsScaler,
        "normalizer": Normalizer,
        "min-max": MinMaxScaler,
        "polynomial-standard": lambda: make_pipeline(PolynomialFeatures(3), StandardScaler()),
        "spline": lambda: SplineTransformer(5),
        "quantile": lambda: QuantileTransformer(n_quantiles=200),
    }
    rng = np.random.default_rng(11)
    X = rng.normal(size=(600, 4)) * [1.0, 3.0, 0.2, 7.0] + [0.0, 5.0, -1.0, 2.0]
    y = (X[:, 0] + 0.3 * X[:, 1] > 1).astype(int)
    model = make_pipeline(make[scaler](), ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0))
    model.fit(X, y)
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))  # (the training rows: on thresholds)
    np.testing.assert_allclose(runtime.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)


BOOSTER_STEPS: dict[str, Callable[[bool], Any]] = {
    "xgboost": lambda c: (xgboost.XGBClassifier if c else xgboost.XGBRegressor)(n_estimators=20, max_depth=4),
    "lightgbm": lambda c: (lightgbm.LGBMClassifier if c else lightgbm.LGBMRegressor)(n_estimators=20, verbose=-1),
    "catboost": lambda c: (catboost.CatBoostClassifier if c else catboost.CatBoostRegressor)(
        iterations=20, depth=4, verbose=0, random_seed=0, thread_count=1
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning:lightgbm")
@pytest.mark.parametrize("container", ["pipeline", "voting", "stacking"])
@pytest.mark.parametrize("framework", list(BOOSTER_STEPS))
def test_boosters_inside_scikit_learn_pipelines_and_ensembles(framework: str, container: str, tmp_path: Path) -> None:
    """XGBoost, LightGBM and CatBoost models as scikit-learn pipeline steps (after a ColumnTransformer
    encoding a DataFrame's strings) and as parts of voting and stacking ensembles. float64 precision
    answers as the frameworks do on the training rows (many on thresholds: labels identical, values to
    1e-12, XGBoost's float32 values to their own precision); float32 precision on held-out
    rows (a tree reading a computed tensor is not narrowed: README, "Exactness")."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import StackingRegressor, VotingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {"a": rng.normal(size=700), "b": rng.choice(["x", "y", "z"], 700), "c": rng.integers(0, 5, 700)}
    )
    classifier = container != "stacking"
    y = (frame["a"] > 0) ^ (frame["b"] == "x") if classifier else frame["a"] * 2 + frame["c"] - (frame["b"] == "y")
    encode = ColumnTransformer([("num", StandardScaler(), ["a", "c"]), ("cat", OneHotEncoder(), ["b"])])
    booster = make_pipeline(encode, BOOSTER_STEPS[framework](classifier))
    linear = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["a", "c"]), ("cat", OneHotEncoder(), ["b"])]),
        LogisticRegression() if classifier else Ridge(),
    )
    model = {
        "pipeline": booster,
        "voting": VotingClassifier([("booster", booster), ("linear", linear)], voting="soft"),
        "stacking": StackingRegressor([("booster", booster), ("linear", linear)], Ridge(), cv=3),
    }[container]
    train, held_out = frame[:500], frame[500:]
    model.fit(train, y[:500].astype(int) if classifier else y[:500])
    mle.export_model(model, tmp_path / "m.mle")
    exact = 1e-6 if framework == "xgboost" else 1e-12  # (XGBoost's own answers are float32)
    for precision, rows, tol in [("float64", train, exact), ("float32", held_out, 1e-5)]:
        runtime = mle.load_model(tmp_path / "m.mle", precision=precision)
        np.testing.assert_array_equal(
            runtime.predict(rows) if classifier else 0, model.predict(rows) if classifier else 0
        )
        ours = runtime.predict_proba(rows) if classifier else runtime.predict(rows)
        theirs = model.predict_proba(rows) if classifier else model.predict(rows)
        scale = np.max(np.abs(theirs))
        assert np.max(np.abs(ours - theirs)) <= tol * max(scale, 1.0), f"{precision}: {np.max(np.abs(ours - theirs))}"


@pytest.mark.parametrize("kind", ["targets", "quantiles", "labels", "vector-targets", "vector-labels"])
def test_xgboost_with_several_targets(kind: str, tmp_path: Path) -> None:
    """XGBoost's multi-target models, one tree per target an iteration or (multi_output_tree) one tree
    with a vector a leaf: several regression targets, several quantiles, and a classifier on several
    labels (its predict: the indicator matrix, as floats); missing values too."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    Y = np.nan_to_num(np.column_stack([X[:, 0] * 2 + X[:, 1], np.sin(X[:, 2]), X[:, 3] ** 2]))
    vector = dict(n_estimators=20, max_depth=4, tree_method="hist", multi_strategy="multi_output_tree")
    model = {
        "targets": lambda: xgboost.XGBRegressor(n_estimators=20, max_depth=4),
        "vector-targets": lambda: xgboost.XGBRegressor(**vector),
        "vector-labels": lambda: xgboost.XGBClassifier(**vector),
        "quantiles": lambda: xgboost.XGBRegressor(
            n_estimators=20, objective="reg:quantileerror", quantile_alpha=np.array([0.1, 0.5, 0.9])
        ),
        "labels": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=3),
    }[kind]()
    labels = kind.endswith("labels")
    model.fit(X, Y[:, 0] if kind == "quantiles" else (np.median(Y, axis=0) < Y).astype(int) if labels else Y)
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    ours, theirs = runtime.predict(X), model.predict(X)
    assert ours.shape == theirs.shape == (400, 3)
    if labels:
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_allclose(runtime.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())


@pytest.mark.parametrize("classes", [0, 2, 3])
def test_xgboost_linear_booster(classes: int, tmp_path: Path) -> None:
    """gblinear: x times the weights plus the bias (a missing value adds nothing), plus the base score
    (its first entry for every class, as XGBoost's linear booster adds it)."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 5))
    X[::7, 2] = np.nan
    if classes:
        model = xgboost.XGBClassifier(n_estimators=10, booster="gblinear").fit(X, rng.integers(0, classes, 300))
    else:
        model = xgboost.XGBRegressor(n_estimators=10, booster="gblinear").fit(X, X[:, 0] * 2 + rng.normal(size=300))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    if classes:
        np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
        np.testing.assert_allclose(runtime.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(runtime.predict(X), model.predict(X), rtol=1e-5, atol=1e-5)
