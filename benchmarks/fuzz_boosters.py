"""Tree ensembles with options drawn at random, on data drawn at random, held to the library that trained them.

    python3 benchmarks/fuzz_boosters.py [--runs 360] [--seed 0] [--only lightgbm] [--timeout 120]

tests/test_trees.py holds one model per option the converters read. Options interact (categories with a
missing type, dart with a base score, a one-hot limit with unseen categories, monotone constraints on
integer columns), and data decide which paths a tree takes (columns spanning 1e-30 to 1e30, repeated and
integer values, constant columns, many categories, NaN where zeros are missing). Each run draws a library
(XGBoost, LightGBM, CatBoost, scikit-learn's tree models in turn), a task, its options and a data set,
fits, exports (the model, its raw booster, or the library's own file) and compares the runtime's answers
with the library's on held-out rows and on rows placed on every split threshold and one ulp either side,
NaN and infinities: labels identical, but where the library's two likeliest classes are within the
tolerance (a tie its last bits decide); probabilities and values within 1e-5 scaled (float32 precision, on
float32 inputs and on float64 inputs) and 1e-12 (float64 precision; XGBoost sums in float32 itself: 1e-5);
for XGBoost and LightGBM models read from numbers, each tree's leaf against the library's own (pred_leaf)
in every precision. A model the library will not fit is skipped; one the exporter refuses is listed with
its message (a refusal is not a difference). Two float32 limits of LightGBM's linear trees are counted
apart, known: answers that overflow (inf or NaN where the library's float64 ones are finite: a linear
leaf's terms past 3.4e38 on inputs near 1e30), and rows whose trees' terms cancel (+-1.5e10 summing to
3.7), which float32 cannot sum exactly. Writes benchmarks/results/boosters.json and .md; exit 1 on any
difference. Its first runs found infinities refused where the libraries take them, LightGBM's infinite
thresholds (dumped as 1e300) and its zero threshold in float32 precision, a raw XGBoost Booster cut at its
best iteration, LightGBM's reg_sqrt ignored, XGBoost's softmax labels in the wrong dtype, and XGBoost's
pruning-deleted nodes overwriting a leaf in the perfect layout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fuzzing import arguments, each_run, pick, said

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

LIBRARIES = ("xgboost", "lightgbm", "catboost", "sklearn")
TASKS = ("binary", "multiclass", "regression", "positive", "unit", "rank")
TINY32 = float(np.finfo(np.float32).tiny)


@dataclass
class Data:
    X: np.ndarray
    queries: np.ndarray  # held-out rows, with categories unseen in training and negative ones
    categorical: list[int]
    y: np.ndarray
    groups: np.ndarray | None
    kinds: list[str]
    labels: str = "ints"

    def describe(self) -> str:
        return f"{len(self.X)} rows, columns {','.join(self.kinds)}, labels {self.labels}"


def _column(kind: str, rng: np.random.Generator, n: int, held_out: bool, levels: int) -> np.ndarray:
    if kind == "normal":
        return rng.normal(size=n) * 10.0 ** int(rng.integers(-3, 4))
    if kind == "rounded":
        return np.round(rng.normal(size=n), 1)
    if kind == "ints":
        return rng.integers(-5, 20, n).astype(np.float64)
    if kind == "wide":
        return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-30, 30, n)
    if kind == "tiny":
        return rng.normal(size=n) * 1e-30
    if kind == "constant":
        return np.full(n, 3.0)
    if kind == "binary":
        return rng.integers(0, 2, n).astype(np.float64)
    if kind == "zeros":
        return np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n))
    codes = rng.integers(0, levels, n)
    if held_out:  # unseen categories and negative ones
        codes = np.where(rng.random(n) < 0.15, rng.integers(-2, levels + 6, n), codes)
    return codes.astype(np.float64)


def _normal32(X: np.ndarray) -> np.ndarray:
    """X with every value normal in float32 (XLA on CPU reads subnormals as 0, a documented limit)."""
    sub = (X != 0) & (np.abs(X) < TINY32)
    return np.where(sub, np.copysign(TINY32, X), X)


def draw_data(rng: np.random.Generator, task: str, library: str) -> Data:
    n = int(rng.choice([60, 400, 1500]))
    kinds = [
        str(k)
        for k in rng.choice(
            ["normal", "rounded", "ints", "wide", "tiny", "constant", "binary", "zeros", "category"],
            int(rng.integers(2, 9)),
            p=[0.2, 0.14, 0.12, 0.08, 0.06, 0.04, 0.08, 0.1, 0.18],
        )
    ]
    levels = [int(rng.choice([3, 12, 40, 300])) for _ in kinds]
    nan_rate = [float(rng.choice([0.0, 0.0, 0.05, 0.3])) for _ in kinds]
    tables = []
    for held_out, rows in ((False, n), (True, 400)):
        columns = []
        for kind, k, rate in zip(kinds, levels, nan_rate, strict=True):
            c = _column(kind, rng, rows, held_out, k)
            c[rng.random(rows) < rate] = np.nan
            columns.append(c)
        tables.append(_normal32(np.column_stack(columns)))
    X, queries = tables
    categorical = [j for j, k in enumerate(kinds) if k == "category"]
    # a target that every column moves: ranks (columns span 60 decades), categories by their code mod 3
    score = np.zeros(n)
    for j in range(X.shape[1]):
        c = X[:, j]
        part = np.mod(np.nan_to_num(c, nan=1.0), 3) / 3 if j in categorical else _ranks(c)
        score += rng.normal() * part
    score += 0.3 * rng.normal(size=n)
    groups = None
    if task == "binary":
        y = (score > np.median(score)).astype(np.int64)
    elif task == "multiclass":
        y = np.searchsorted(np.quantile(score, [0.25, 0.5, 0.8]), score).astype(np.int64)
    elif task == "regression":
        y = 10 * score + rng.normal(size=n)
    elif task == "positive":
        y = np.exp(score / max(np.std(score), 1e-9))
    elif task == "unit":
        y = 1 / (1 + np.exp(-score / max(np.std(score), 1e-9)))
    else:
        y = np.searchsorted(np.quantile(score, [0.4, 0.7, 0.9]), score).astype(np.int64)
        groups = np.repeat(np.arange(n // 20 + 1), 20)[:n]
    data = Data(X, queries, categorical, y, groups, kinds)
    if task in ("binary", "multiclass") and library != "xgboost" and rng.random() < 0.3:
        data.y, data.labels = np.array(["ant", "bee", "cat", "dog"])[y], "strings"
    return data


def _ranks(c: np.ndarray) -> np.ndarray:
    r = np.argsort(np.argsort(np.nan_to_num(c, nan=0.0))) / len(c)
    return np.where(np.isnan(c), 0.5, r)


# ---------------------------------------------------------------- options per library


def xgboost_model(rng: np.random.Generator, task: str, data: Data) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import xgboost

    p: dict[str, Any] = dict(
        n_estimators=int(rng.integers(1, 40)),
        max_depth=pick(rng, [1, 2, 3, 6, 10]),
        learning_rate=pick(rng, [0.05, 0.3, 1.0]),
        random_state=0,
        n_jobs=1,
        tree_method=pick(rng, ["hist", "hist", "approx", "exact"]),
    )
    if data.categorical:
        p["tree_method"] = pick(rng, ["hist", "approx"])
        p.update(enable_categorical=True, max_cat_to_onehot=pick(rng, [1, 4, 64]))
        p["feature_types"] = ["c" if j in data.categorical else "q" for j in range(data.X.shape[1])]
        if rng.random() < 0.3:
            p["max_cat_threshold"] = pick(rng, [2, 8])
    if rng.random() < 0.2 and p["tree_method"] != "exact":
        p.update(grow_policy="lossguide", max_leaves=pick(rng, [4, 16, 64]), max_depth=pick(rng, [0, 6]))
    if rng.random() < 0.2:
        p.update(booster="dart", rate_drop=pick(rng, [0.1, 0.5]), skip_drop=pick(rng, [0.0, 0.5]))
        p.update(normalize_type=pick(rng, ["tree", "forest"]), sample_type=pick(rng, ["uniform", "weighted"]))
        p["one_drop"] = bool(rng.random() < 0.3)
    if rng.random() < 0.15:
        p.update(num_parallel_tree=3, subsample=0.7)
    if rng.random() < 0.2 and p["tree_method"] != "exact":
        p["max_bin"] = pick(rng, [4, 16, 1024])
    if rng.random() < 0.2:
        p["missing"] = pick(rng, [0.0, -5.0])
    if rng.random() < 0.3:
        p.update(min_child_weight=pick(rng, [0.0, 5.0]), gamma=pick(rng, [0.0, 1.0]))
        p.update(reg_lambda=pick(rng, [0.0, 10.0]), reg_alpha=pick(rng, [0.0, 1.0]))
    if rng.random() < 0.2:
        p["colsample_bynode"] = 0.5
    if rng.random() < 0.15 and not data.categorical:
        p["monotone_constraints"] = "(" + ",".join(str(pick(rng, [-1, 0, 1])) for _ in data.kinds) + ")"
    fit: dict[str, Any] = {}
    if task == "binary":
        objective = pick(rng, ["binary:logistic", "binary:logistic", "binary:logitraw", "binary:hinge"])
        if rng.random() < 0.3:
            p["base_score"] = pick(rng, [0.2, 0.9])
        if rng.random() < 0.2:
            p["scale_pos_weight"] = 3.0
        make = xgboost.XGBClassifier
    elif task == "multiclass":
        objective = pick(rng, ["multi:softprob", "multi:softprob", "multi:softmax"])
        if rng.random() < 0.2 and p["tree_method"] == "hist" and p.get("booster") != "dart":
            p["multi_strategy"] = "multi_output_tree"
        make = xgboost.XGBClassifier
    elif task == "regression":
        objective = pick(
            rng,
            ["reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:quantileerror", "reg:squarederror"],
        )
        if objective == "reg:quantileerror":
            p["quantile_alpha"] = pick(rng, [0.3, [0.1, 0.5, 0.9]])
        if objective == "reg:pseudohubererror":
            p["huber_slope"] = pick(rng, [1.0, 5.0])
        if rng.random() < 0.3:
            p["base_score"] = pick(rng, [-3.0, 40.0])
        make = xgboost.XGBRegressor
    elif task == "positive":
        objective = pick(rng, ["count:poisson", "reg:gamma", "reg:tweedie", "reg:squaredlogerror", "survival:cox"])
        if objective == "reg:tweedie":
            p["tweedie_variance_power"] = pick(rng, [1.2, 1.8])
        make = xgboost.XGBRegressor
    elif task == "unit":
        objective = "reg:logistic"
        make = xgboost.XGBRegressor
    else:
        objective = pick(rng, ["rank:pairwise", "rank:ndcg", "rank:map"])
        fit["qid"] = data.groups
        make = xgboost.XGBRanker
    p["objective"] = objective
    if task != "rank" and rng.random() < 0.15:
        p["early_stopping_rounds"] = 2
        p["n_estimators"] = 40
        half = len(data.X) // 2
        fit["eval_set"] = [(data.X[half:], data.y[half:])]
        fit["verbose"] = False
    return make(**p), p, fit


def lightgbm_model(rng: np.random.Generator, task: str, data: Data) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import lightgbm

    p: dict[str, Any] = dict(
        n_estimators=int(rng.integers(1, 40)),
        num_leaves=pick(rng, [2, 4, 15, 63]),
        max_depth=pick(rng, [-1, -1, 2, 5]),
        min_child_samples=pick(rng, [1, 5, 20]),
        learning_rate=pick(rng, [0.05, 0.3, 1.0]),
        random_state=0,
        n_jobs=1,
        verbose=-1,
    )
    boosting = pick(rng, ["gbdt", "gbdt", "gbdt", "dart", "rf", "goss"])
    if boosting == "rf":
        p.update(boosting_type="rf", bagging_freq=1, bagging_fraction=0.6)
    elif boosting == "goss":
        p["data_sample_strategy"] = "goss"
    else:
        p["boosting_type"] = boosting
    if rng.random() < 0.2:
        p["zero_as_missing"] = True
    if rng.random() < 0.15:
        p["use_missing"] = False
    if rng.random() < 0.3:
        p.update(max_bin=pick(rng, [3, 15, 1023]), min_data_in_bin=pick(rng, [1, 3, 20]))
    if rng.random() < 0.15:
        p["linear_tree"] = True
        if rng.random() < 0.5:
            p["linear_lambda"] = 0.5
    if rng.random() < 0.15:
        p["extra_trees"] = True
    if rng.random() < 0.15:
        p["path_smooth"] = 1.0
    if rng.random() < 0.2:
        p.update(reg_alpha=pick(rng, [0.0, 1.0]), reg_lambda=pick(rng, [0.0, 10.0]))
    if rng.random() < 0.1 and not data.categorical:
        p["monotone_constraints"] = [pick(rng, [-1, 0, 1]) for _ in data.kinds]
    fit: dict[str, Any] = {}
    if data.categorical:
        fit["categorical_feature"] = data.categorical
        p.update(max_cat_to_onehot=pick(rng, [4, 64]), min_data_per_group=pick(rng, [1, 20, 100]))
        p.update(cat_smooth=pick(rng, [1.0, 10.0]), max_cat_threshold=pick(rng, [4, 32]))
    make: Callable[..., Any] = lightgbm.LGBMRegressor
    if task == "binary":
        make = lightgbm.LGBMClassifier
        p["objective"] = "binary"
        if rng.random() < 0.3:
            p["sigmoid"] = pick(rng, [0.5, 2.0])
        if rng.random() < 0.2:
            p["is_unbalance"] = True
    elif task == "multiclass":
        make = lightgbm.LGBMClassifier
        p["objective"] = pick(rng, ["multiclass", "multiclassova"])
        if p["objective"] == "multiclassova" and rng.random() < 0.3:
            p["sigmoid"] = 2.0
    elif task == "regression":
        p["objective"] = pick(rng, ["regression", "regression_l1", "huber", "fair", "quantile", "mape"])
        if p["objective"] == "regression" and rng.random() < 0.4:
            p["reg_sqrt"] = True
        if p["objective"] in ("huber", "quantile"):
            p["alpha"] = pick(rng, [0.3, 0.9])
        if p["objective"] == "fair":
            p["fair_c"] = pick(rng, [0.5, 2.0])
    elif task == "positive":
        p["objective"] = pick(rng, ["poisson", "gamma", "tweedie"])
        if p["objective"] == "tweedie":
            p["tweedie_variance_power"] = pick(rng, [1.2, 1.8])
    elif task == "unit":
        p["objective"] = pick(rng, ["cross_entropy", "cross_entropy_lambda"])
    else:
        make = lightgbm.LGBMRanker
        p["objective"] = pick(rng, ["lambdarank", "rank_xendcg"])
        fit["group"] = np.bincount(data.groups)
    if task not in ("multiclass", "rank") and rng.random() < 0.2:
        p["boost_from_average"] = False
    if task != "rank" and rng.random() < 0.15:
        p["n_estimators"] = 40
        half = len(data.X) // 2
        fit["eval_set"] = [(data.X[half:], data.y[half:])]
        fit["callbacks"] = [lightgbm.early_stopping(2, verbose=False)]
    return make(**p), p, fit


def catboost_model(rng: np.random.Generator, task: str, data: Data) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import catboost

    p: dict[str, Any] = dict(
        iterations=int(rng.integers(1, 40)),
        depth=pick(rng, [1, 2, 4, 6, 8]),
        learning_rate=pick(rng, [0.05, 0.3, 1.0]),
        verbose=0,
        random_seed=0,
        thread_count=1,
        allow_writing_files=False,
    )
    policy = pick(rng, ["SymmetricTree", "SymmetricTree", "Depthwise", "Lossguide"])
    if policy != "SymmetricTree":
        p["grow_policy"] = policy
        if policy == "Lossguide":
            p["max_leaves"] = pick(rng, [4, 16])
    p["nan_mode"] = pick(rng, ["Min", "Max"])
    if rng.random() < 0.3:
        p["border_count"] = pick(rng, [2, 32, 1024])
    if rng.random() < 0.2:
        p["boosting_type"] = "Ordered"
    if rng.random() < 0.2:
        p["l2_leaf_reg"] = pick(rng, [0.0, 30.0])
    if data.categorical:
        p["cat_features"] = data.categorical
        p["one_hot_max_size"] = pick(rng, [2, 10, 255])
    make: Callable[..., Any] = catboost.CatBoostRegressor
    if task == "binary":
        make = catboost.CatBoostClassifier
        p["loss_function"] = pick(rng, ["Logloss", "Logloss", "CrossEntropy"])
        if rng.random() < 0.2:
            p["auto_class_weights"] = "Balanced"
    elif task == "multiclass":
        make = catboost.CatBoostClassifier
        p["loss_function"] = pick(rng, ["MultiClass", "MultiClassOneVsAll"])
    elif task == "regression":
        p["loss_function"] = pick(
            rng,
            [
                "RMSE",
                "MAE",
                "Quantile:alpha=0.3",
                "Expectile:alpha=0.7",
                "Huber:delta=1.0",
                "Lq:q=3",
                "LogCosh",
                "RMSEWithUncertainty",
                "LogLinQuantile:alpha=0.4",
                "MultiQuantile:alpha=0.2,0.8",
            ],
        )
    elif task == "positive":
        p["loss_function"] = pick(rng, ["Poisson", "Tweedie:variance_power=1.5", "MAPE"])
    elif task == "unit":
        p["loss_function"] = "RMSE"
    else:
        make = catboost.CatBoostRanker
        p["loss_function"] = pick(rng, ["YetiRank", "PairLogit", "QueryRMSE"])
    fit: dict[str, Any] = {}
    if task == "rank":
        fit["group_id"] = data.groups
    if p["loss_function"] in ("Poisson", "Tweedie:variance_power=1.5") and rng.random() < 0.5:
        p["boost_from_average"] = True
    return make(**p), p, fit


def sklearn_model(rng: np.random.Generator, task: str, data: Data) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """scikit-learn's tree models: histogram boosting (native categories, constraints, losses), forests,
    extra trees, gradient boosting and single trees. Ranking is regression here."""
    from sklearn import ensemble, tree

    classify = task in ("binary", "multiclass")
    kind = pick(rng, ["hgb", "hgb", "hgb", "forest", "extra", "boosting", "tree"])
    p: dict[str, Any] = {"random_state": 0}
    if kind == "hgb":
        p.update(max_iter=int(rng.integers(1, 40)), learning_rate=pick(rng, [0.1, 0.5, 1.0]))
        p.update(max_leaf_nodes=pick(rng, [2, 8, 31]), max_depth=pick(rng, [None, 3]))
        p.update(min_samples_leaf=pick(rng, [1, 5, 20]), max_bins=pick(rng, [3, 16, 255]))
        if rng.random() < 0.3:
            p["l2_regularization"] = pick(rng, [0.5, 10.0])
        if data.categorical:
            p["categorical_features"] = data.categorical
        elif rng.random() < 0.2:
            p["monotonic_cst"] = [pick(rng, [-1, 0, 1]) for _ in data.kinds]
        if rng.random() < 0.15 and len(data.kinds) > 2:
            p["interaction_cst"] = [[0, 1], list(range(2, len(data.kinds)))]
        if rng.random() < 0.2:
            p.update(early_stopping=True, validation_fraction=0.2, n_iter_no_change=2)
        if classify:
            if rng.random() < 0.2:
                p["class_weight"] = "balanced"
            return ensemble.HistGradientBoostingClassifier(**p), p, {}
        losses = {"positive": ["poisson", "gamma", "squared_error"], "unit": ["squared_error", "absolute_error"]}
        p["loss"] = pick(rng, losses.get(task, ["squared_error", "absolute_error", "quantile"]))
        if p["loss"] == "quantile":
            p["quantile"] = pick(rng, [0.2, 0.8])
        return ensemble.HistGradientBoostingRegressor(**p), p, {}
    p.update(max_depth=pick(rng, [None, 2, 6]), min_samples_leaf=pick(rng, [1, 5]))
    if kind in ("forest", "extra"):
        p.update(n_estimators=int(rng.integers(1, 20)), max_features=pick(rng, [None, "sqrt", 0.5]))
        if rng.random() < 0.3:
            p["bootstrap"] = kind == "extra"  # (the other way from each one's default)
        make = {
            ("forest", True): ensemble.RandomForestClassifier,
            ("forest", False): ensemble.RandomForestRegressor,
            ("extra", True): ensemble.ExtraTreesClassifier,
            ("extra", False): ensemble.ExtraTreesRegressor,
        }[kind, classify]
        return make(**p), p, {}
    if kind == "boosting":
        p.update(n_estimators=int(rng.integers(1, 30)), learning_rate=pick(rng, [0.1, 1.0]))
        if rng.random() < 0.3:
            p["subsample"] = 0.7
        if classify:
            if task == "binary" and rng.random() < 0.3:
                p["loss"] = "exponential"
            return ensemble.GradientBoostingClassifier(**p), p, {}
        p["loss"] = pick(rng, ["squared_error", "absolute_error", "huber", "quantile"])
        return ensemble.GradientBoostingRegressor(**p), p, {}
    if rng.random() < 0.3:
        p["splitter"] = "random"
    make = tree.DecisionTreeClassifier if classify else tree.DecisionTreeRegressor
    return make(**p), p, {}


MODELS = {"xgboost": xgboost_model, "lightgbm": lightgbm_model, "catboost": catboost_model, "sklearn": sklearn_model}


# ---------------------------------------------------------------- the library's answers and leaves


def library_input(library: str, X: np.ndarray, data: Data) -> Any:
    """X as the library reads it: CatBoost's categorical columns as strings (a missing one as "NA")."""
    if library != "catboost" or not data.categorical:
        return X
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    for j in data.categorical:
        c = X[:, j]
        frame[f"f{j}"] = np.where(np.isnan(c), "NA", np.nan_to_num(c).astype(np.int64).astype(str))
    return frame


def reference(model: Any, X: Any) -> list[np.ndarray]:
    if hasattr(model, "predict_proba") and "Ranker" not in type(model).__name__:
        return [np.asarray(model.predict(X)).reshape(len(X)), np.asarray(model.predict_proba(X))]
    return [np.asarray(model.predict(X))]


def compare(ours: list[np.ndarray], ref: list[np.ndarray], tol: float) -> str:
    from trees_support import scaled_error

    if len(ours) != len(ref):
        return f"{len(ours)} outputs, the library {len(ref)}"
    ties = 0
    if len(ref) == 2:
        labels, expected = np.asarray(ours[0]).reshape(-1), np.asarray(ref[0]).reshape(-1)
        if labels.shape != expected.shape:
            return f"labels of shape {labels.shape}, the library {expected.shape}"
        wrong = labels.astype(str) != expected.astype(str)
        if wrong.any():
            # a row whose two likeliest classes are within the tolerance of each other is a tie its last
            # bits decide (float32 rounding makes many)
            top = np.sort(np.asarray(ref[1], np.float64).reshape(len(expected), -1), axis=1)
            tied = top[:, -1] - top[:, -2] <= tol if top.shape[1] > 1 else np.zeros(len(top), bool)
            if not tied[wrong].all():
                return f"labels differ ({int(np.sum(wrong & ~tied))} rows, not tied)"
            ties = int(wrong.sum())
        if labels.dtype != expected.dtype and not (labels.dtype.kind == expected.dtype.kind == "U"):
            return f"labels dtype {labels.dtype}, the library {expected.dtype}"
    if np.asarray(ours[-1]).size != np.asarray(ref[-1]).size:
        return f"shape {np.shape(ours[-1])}, the library {np.shape(ref[-1])}"
    error = scaled_error(ours[-1], ref[-1])
    if error > tol:
        return f"off by {error:.3g}"
    return f"ok (labels of {ties} tied rows differ)" if ties else "ok"


def _overflows(ours: np.ndarray, ref: np.ndarray) -> bool:
    """Whether float32 answers are inf or NaN where the library's (float64) are finite."""
    ours, ref = np.asarray(ours, np.float64).reshape(len(ref), -1), np.asarray(ref, np.float64).reshape(len(ref), -1)
    return bool(np.any(~np.isfinite(ours) & np.isfinite(ref)))


def _cancelling_rows(native: Any, X: np.ndarray, tol: float) -> np.ndarray:
    """Rows of a LightGBM linear-tree model whose trees' raw terms are so much larger than their sum that
    float32 rounding of the terms alone moves the sum past the tolerance (terms of +-1.5e10 that cancel
    to 3.7, say: a linear leaf's coefficient times a wide column); float32 cannot answer them exactly."""
    booster = getattr(native, "booster_", native)
    rounds = getattr(native, "best_iteration_", None) or booster.current_iteration()
    raw = np.asarray(booster.predict(X, raw_score=True, num_iteration=rounds), np.float64).reshape(len(X), -1)
    magnitude = np.zeros_like(raw)
    for t in range(rounds):
        term = booster.predict(X, raw_score=True, start_iteration=t, num_iteration=1)
        magnitude += np.abs(np.asarray(term, np.float64).reshape(len(X), -1))
    with np.errstate(invalid="ignore"):
        return np.any(magnitude * 4 * 2.0**-24 > tol * np.maximum(np.abs(raw), 1), axis=1)


def _verdict_without(rows: np.ndarray, ours: list[np.ndarray], ref: list[np.ndarray], tol: float) -> str:
    keep = ~rows
    return compare([np.asarray(o)[keep] for o in ours], [np.asarray(r)[keep] for r in ref], tol)


def library_leaves(library: str, model: Any, X: np.ndarray, path: Path, params: dict[str, Any]) -> np.ndarray:
    """The library's own leaf for each (row, tree), as the file's leaf numbers."""
    from trees_support import ranks_of

    from mle_runtime.converters import lightgbm as lgb_converter
    from mle_runtime.converters import xgboost as xgb_converter

    if library == "xgboost":
        import xgboost

        booster = model.get_booster()
        dm = xgboost.DMatrix(X, missing=params.get("missing", np.nan), feature_types=booster.feature_types)
        rounds = getattr(model, "best_iteration", None)
        kw = {"iteration_range": (0, rounds + 1)} if rounds is not None else {}
        leaves = booster.predict(dm, pred_leaf=True, **kw).reshape(len(X), -1).astype(np.int64)  # (model order)
        raw = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]["gradient_booster"]
        body = raw.get("model") or raw["gbtree"]["model"]
        outputs = [int(c) for c in body["tree_info"]]
        order = xgb_converter.round_robin(outputs, 0, leaves.shape[1], max(outputs[: leaves.shape[1]]) + 1)
        trees = [xgb_converter._tree(body["trees"][i], None) for i in order]
        return ranks_of(trees, leaves[:, order], path)
    trees, _ = lgb_converter.trees_of(model)
    leaves = np.asarray(model.predict(X, pred_leaf=True)).reshape(len(X), -1)
    return ranks_of(trees[: leaves.shape[1]], leaves, path)


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    index: int
    library: str
    task: str
    route: str = "model"
    data: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)
    skipped: str = ""
    refused: str = ""

    def differs(self) -> bool:
        return any(not v.startswith(("ok", "known:")) and v != "both refuse" for v in self.outcome.values())


def export_route(
    rng: np.random.Generator, library: str, model: Any, folder: Path, params: dict[str, Any]
) -> tuple[str, Any, Any]:
    """How the model reaches the exporter (the fitted model, its raw booster, or the library's own file),
    and the object whose answers it must give."""
    route = pick(rng, ["model", "model", "model", "booster", "file"])
    if library == "sklearn":
        return "model", model, model
    if library == "catboost" or (route == "booster" and library == "xgboost" and "missing" in params):
        route = "model" if route == "booster" else route
    if route == "model":
        return route, model, model
    if route == "booster":
        booster = model.get_booster() if library == "xgboost" else model.booster_
        return route, booster, booster
    from mle_runtime.converters.native import load_native

    if library == "xgboost":
        path = folder / pick(rng, ["model.json", "model.ubj"])
        model.get_booster().save_model(str(path))
    elif library == "lightgbm":
        path = folder / "model.txt"
        model.booster_.save_model(str(path))
    else:
        path = folder / "model.cbm"
        model.save_model(str(path))
    return route, path, load_native(path, library)


def raw_reference(library: str, native: Any, X: np.ndarray) -> list[np.ndarray]:
    """A raw booster's predict (XGBoost's reads NaN as missing: a raw booster keeps no other marker)."""
    if library == "xgboost":  # (in place, as its scikit-learn predict: a DMatrix refuses infinities)
        return [np.asarray(native.inplace_predict(X))]
    if library == "lightgbm":
        return [np.asarray(native.predict(X))]
    return reference(native, X)


def one_run(index: int, seed: int, only: str, folder: Path) -> Run | None:
    from trees_support import edge_inputs, our_leaves, split_points

    import mle_runtime as mle

    rng = np.random.default_rng([seed, index])
    library = LIBRARIES[index % len(LIBRARIES)]
    task = pick(rng, list(TASKS))
    run = Run(index, library, task)
    if only and only not in library:
        return None
    data = draw_data(rng, task, library)
    run.data = data.describe()
    model, params, fit = MODELS[library](rng, task, data)
    run.params = {k: v for k, v in params.items() if k not in ("verbose", "random_state", "random_seed")}
    try:
        model.fit(library_input(library, data.X, data), data.y, **fit)
    except Exception as e:  # (options or data the library itself does not take)
        run.skipped = said(e, 200)
        return run
    run.route, source, native = export_route(rng, library, model, folder, params)
    out = folder / "m.mle"
    try:
        mle.export_model(source, out)
    except (ValueError, mle.UnsupportedModelError) as e:
        run.refused = said(e)
        return run
    # (a model of single leaves has no split to place rows on)
    numbers = (library != "catboost" or not data.categorical) and bool(split_points(out))
    # scikit-learn's trees refuse infinities, but for histogram boosting, which refuses them as categories
    takes_inf = library != "sklearn" or type(model).__name__.startswith("HistGradientBoosting")
    edges = {
        p32: edge_inputs(out, data.queries, 300, seed=index, float32=p32, inf=takes_inf) if numbers else data.queries
        for p32 in (True, False)
    }
    if library == "sklearn" and data.categorical:
        for rows in edges.values():
            rows[:, data.categorical] = np.where(np.isinf(rows[:, data.categorical]), np.nan, rows[:, data.categorical])
    cases = {  # (precision, float32 inputs)
        "float32": ("float32", True),
        "float32, float64 inputs": ("float32", False),
        "float64": ("float64", False),
    }
    for name, (precision, f32) in cases.items():
        X = np.vstack([data.queries, edges[f32]])
        if f32:
            X = X.astype(np.float32).astype(np.float64)
        exact = precision == "float64" and library != "xgboost"
        tol = 1e-12 if exact else 1e-5
        try:
            runtime = mle.load_model(out, precision=precision)
        except Exception as e:
            run.outcome[name] = f"load: {said(e)}"[:240]
            continue
        frame = library_input(library, X, data)
        try:
            if run.route == "model" or library == "catboost":
                expected = reference(native, frame)
            else:
                expected = raw_reference(library, native, X)
        except Exception:
            expected = None
        try:
            ours = runtime.run([frame])
        except ValueError as e:
            run.outcome[name] = "both refuse" if expected is None else f"refused: {' '.join(str(e).split())}"[:240]
            continue
        except Exception as e:
            run.outcome[name] = f"run: {said(e)}"[:240]
            continue
        if expected is None:
            run.outcome[name] = "the library refuses, the runtime answers"
            continue
        verdict = compare(ours, expected, tol)
        if not verdict.startswith("ok") and precision == "float32" and _overflows(ours[-1], expected[-1]):
            verdict = (
                "known: float32 overflow (terms past 3.4e38, a linear leaf's, say, where the library's are finite)"
            )
        if not verdict.startswith(("ok", "known:")) and precision == "float32" and params.get("linear_tree"):
            cancelling = _cancelling_rows(native, X, tol)
            if cancelling.any() and _verdict_without(cancelling, ours, expected, tol).startswith("ok"):
                rows = int(cancelling.sum())
                verdict = f"known: float32 cancellation ({rows} rows whose linear leaves' terms cancel)"
        # (the leaf helper rounds inputs to the precision: float64 inputs in float32 precision are the answers')
        leaves = (
            numbers and run.route == "model" and library in ("xgboost", "lightgbm") and (f32 or precision == "float64")
        )
        if verdict.startswith("ok") and leaves:
            E = edges[f32].astype(np.float32).astype(np.float64) if f32 else edges[f32]
            if library == "xgboost":  # (its leaves come from a DMatrix, which refuses infinities)
                E = E[~np.isinf(E).any(axis=1)]
            try:
                mine, theirs = our_leaves(out, E, precision), library_leaves(library, model, E, out, params)
                if not np.array_equal(mine, theirs):
                    verdict = f"leaves differ ({int(np.sum(np.any(mine != theirs, axis=1)))} rows)"
            except Exception as e:
                verdict = f"leaves not compared: {said(e)}"[:200]
        run.outcome[name] = verdict
    return run


def main() -> int:
    args = arguments(__doc__, 360, "only this library")
    started, runs = time.time(), []
    with tempfile.TemporaryDirectory() as tmp:

        def failed(index: int, message: str) -> Run:
            return Run(index, LIBRARIES[index % len(LIBRARIES)], "?", outcome={"run": message})

        for run in each_run(args.runs, args.timeout, lambda i: one_run(i, args.seed, args.only, Path(tmp)), failed):
            runs.append(run)
            if run.differs():
                print(
                    f"run {run.index} ({run.library}, {run.task}, {run.route}): {run.outcome} {run.params}", flush=True
                )
    return write_results(runs, args, time.time() - started)


def write_results(runs: list[Run], args: argparse.Namespace, seconds: float) -> int:
    fitted = [r for r in runs if not r.skipped]
    differ = [r for r in runs if r.differs()]
    known = [r for r in runs if any(v.startswith("known:") for v in r.outcome.values())]
    refused = [r for r in fitted if r.refused]
    summary = (
        f"{len(runs)} runs (seed {args.seed}) in {seconds:.0f} s: {len(fitted)} fitted by the library, "
        f"{len(refused)} refused at export, {len(differ)} differ from the library, {len(known)} more differ "
        "in a known way (float32 overflow or cancellation in linear trees)."
    )
    lines = [f"# Tree ensembles with options drawn at random ({time.strftime('%Y-%m-%d')})", "", summary, ""]
    lines += ["| run | library | task | route | data | outcome | options |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        outcome = (r.skipped and f"not fitted: {r.skipped}") or (r.refused and f"refused: {r.refused}")
        outcome = outcome or "; ".join(f"{k}: {v}" for k, v in r.outcome.items())
        options = json.dumps(r.params, default=str).replace("|", "/")
        lines.append(
            f"| {r.index} | {r.library} | {r.task} | {r.route} | {r.data} | {outcome.replace('|', '/')} | {options} |"
        )
    RESULTS.mkdir(exist_ok=True)
    record = {"summary": summary, "runs": [r.__dict__ for r in runs]}
    (RESULTS / "boosters.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    (RESULTS / "boosters.md").write_text("\n".join(lines) + "\n")
    print(summary)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
