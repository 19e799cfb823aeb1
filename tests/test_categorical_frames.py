"""Boosters trained on a DataFrame's categorical columns (XGBoost's ``enable_categorical``, LightGBM's
pandas categories, HistGradientBoosting's ``categorical_features="from_dtype"``): those columns take the
category values, strings or numbers, and the answers match each framework's predict on the same
DataFrame, whatever order the frame's own categories come in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

import mle_runtime as mle
from mle_runtime.converters import lightgbm as lgb_converter
from mle_runtime.errors import InputError, UnsupportedModelError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:lightgbm")

COLOURS = ["red", "green", "blue", "amber"]  # the categories' own order is not sorted: codes differ from ranks
GRADES = [30, 10, 20]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "colour": pd.Categorical(rng.choice(np.array([*COLOURS, None], dtype=object), n), categories=COLOURS),
            "z": rng.normal(size=n),
            "grade": pd.Categorical(rng.choice(GRADES, n), categories=GRADES),
        }
    )


def target(df: pd.DataFrame) -> np.ndarray:
    colour = df["colour"].astype(object)
    return ((colour.isin(["green", "amber"])).to_numpy() ^ (df["x"] > 0.3).to_numpy()) | (df["grade"] == 10).to_numpy()


MODELS: dict[str, Callable[[], Any]] = {
    "xgboost": lambda: xgboost.XGBClassifier(n_estimators=30, max_depth=4, enable_categorical=True),
    "xgboost-regressor": lambda: xgboost.XGBRegressor(n_estimators=30, max_depth=4, enable_categorical=True),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=30, min_data_per_group=10, verbose=-1),
    "lightgbm-regressor": lambda: lightgbm.LGBMRegressor(n_estimators=30, min_data_per_group=10, verbose=-1),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=30),
    "hist-gradient-boosting-regressor": lambda: HistGradientBoostingRegressor(max_iter=30),
}


def trained(name: str) -> Any:
    train = frame(2000, 0)
    y = target(train)
    return MODELS[name]().fit(train, y.astype(float) if "regressor" in name else y)


def answers(model: Any, df: Any, classifier: bool) -> list[np.ndarray]:
    return [model.predict(df), model.predict_proba(df)] if classifier else [model.predict(df)]


def check_same(model: Any, runtime: mle.MLERuntime, df: pd.DataFrame, given: Any = None) -> None:
    """The runtime's answers for ``given`` (default ``df``) are the model's for ``df``."""
    classifier = hasattr(model, "predict_proba")
    ours, theirs = answers(runtime, df if given is None else given, classifier), answers(model, df, classifier)
    if classifier:  # labels identical
        np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=1e-5, atol=1e-6)


def exported(model: Any, tmp_path: Path, **options: Any) -> mle.MLERuntime:
    path = tmp_path / "model.mle"
    mle.export_model(model, path)
    return mle.load_model(path, **options)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_categorical_columns_take_category_values(name: str, precision: str, tmp_path: Path) -> None:
    model = trained(name)
    runtime = exported(model, tmp_path, precision=precision)
    test = frame(400, 1)
    check_same(model, runtime, test)
    # the same values with the frame's categories in another order (codes differ; XGBoost and LightGBM
    # recode by value), and as plain columns of strings and numbers
    reordered = test.assign(
        colour=test["colour"].cat.reorder_categories(COLOURS[::-1]),
        grade=test["grade"].cat.reorder_categories(sorted(GRADES)),
    )
    check_same(model, runtime, reordered)
    plain = test.assign(colour=test["colour"].astype(object), grade=test["grade"].astype(float))
    check_same(model, runtime, test, plain)
    check_same(model, runtime, test, plain.to_numpy(dtype=object))


@pytest.mark.parametrize("name", ["lightgbm", "hist-gradient-boosting"])
def test_unseen_categories_are_missing_values(name: str, tmp_path: Path) -> None:
    model = trained(name)
    runtime = exported(model, tmp_path)
    test = frame(200, 2)
    colour = test["colour"].astype(object)
    colour[:20] = "purple"
    grade = test["grade"].astype(float)
    grade[20:40] = 40.0
    test = test.assign(
        colour=pd.Categorical(colour, categories=[*COLOURS, "purple"]), grade=pd.Categorical(grade.astype(int))
    )
    check_same(model, runtime, test)


@pytest.mark.parametrize("column, value", [("colour", "purple"), ("grade", 40)])
def test_xgboost_refuses_unseen_categories(column: str, value: Any, tmp_path: Path) -> None:
    runtime = exported(trained("xgboost"), tmp_path)
    test = frame(50, 3)
    values = test[column].astype(object)
    values[7] = value
    with pytest.raises(InputError, match=r"none of the categories XGBoost kept.*rows \[7\]"):
        runtime.predict(test.assign(**{column: pd.Categorical(values)}))
    runtime.predict(test)  # the rows without one still answer


def _numeric_thresholds(model: Any) -> np.ndarray:
    if isinstance(model, lightgbm.LGBMModel):
        trees, _ = lgb_converter.trees_of(model)
        values = [t.threshold[(t.left >= 0) & np.isfinite(t.threshold)] for t in trees]
    else:
        values = [
            p.nodes["num_threshold"][~p.nodes["is_leaf"].astype(bool) & ~p.nodes["is_categorical"].astype(bool)]
            for iteration in model._predictors
            for p in iteration
        ]
    return np.unique(np.concatenate(values))


@pytest.mark.parametrize("name", ["lightgbm", "hist-gradient-boosting"])
def test_float64_inputs_on_thresholds_beside_categorical_columns(name: str, tmp_path: Path) -> None:
    """The float32 runtime narrows float64 inputs exactly for these float64-splitting trees, also on the
    columns next to the categorical ones (the trees read them through the coding step)."""
    model = trained(name)
    runtime = exported(model, tmp_path)
    t = _numeric_thresholds(model)
    t = t[np.abs(t) < 1e30]
    values = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)])
    test = frame(len(values), 4).assign(x=values, z=np.random.default_rng(5).permutation(values))
    check_same(model, runtime, test)


def test_lightgbm_ordered_categoricals_are_refused(tmp_path: Path) -> None:
    train = frame(1000, 0)
    train["level"] = pd.Categorical(train["grade"].astype(int), categories=GRADES, ordered=True)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(train, target(train))
    with pytest.raises(UnsupportedModelError, match="which column holds which categories"):
        mle.export_model(model, tmp_path / "m.mle")


def test_non_ascii_categories_are_exact_or_refused(tmp_path: Path) -> None:
    """XGBoost 3.2 keeps only the first bytes of a non-ASCII category name; such a model is refused, not
    answered wrongly (a version that keeps them whole must match)."""
    train = frame(2000, 0)
    names = {"red": "rouge", "green": "vert", "blue": "bleu", "amber": "ambré"}
    train["colour"] = train["colour"].cat.rename_categories(names)
    y = target(frame(2000, 0))
    model = xgboost.XGBClassifier(n_estimators=10, enable_categorical=True).fit(train, y)
    try:
        runtime = exported(model, tmp_path)
    except UnsupportedModelError as e:
        assert "damaged" in str(e)
        return
    test = frame(300, 1)
    check_same(model, runtime, test.assign(colour=test["colour"].cat.rename_categories(names)))


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_native_model_files_keep_the_categories(framework: str, tmp_path: Path) -> None:
    model = trained(framework)
    if framework == "xgboost":
        native = tmp_path / "model.json"
        model.save_model(native)
        booster = xgboost.Booster(model_file=native)
    else:
        native = tmp_path / "model.txt"
        model.booster_.save_model(native)
        booster = lightgbm.Booster(model_file=native)
    mle.export_model(booster, tmp_path / "model.mle")
    runtime = mle.load_model(tmp_path / "model.mle")
    test = frame(300, 6)
    expected = model.predict_proba(test)[:, 1]
    np.testing.assert_allclose(runtime.run([test])[0].reshape(-1), expected, rtol=1e-5, atol=1e-6)


def test_categorical_columns_passed_through_a_column_transformer(tmp_path: Path) -> None:
    """A ColumnTransformer with pandas output scales some columns and passes the categorical ones
    through; the HistGradientBoosting after it still reads their categories by value."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = frame(2000, 0)
    encode = ColumnTransformer([("num", StandardScaler(), ["x", "z"]), ("cat", "passthrough", ["colour", "grade"])])
    model = make_pipeline(encode.set_output(transform="pandas"), HistGradientBoostingClassifier(max_iter=20))
    model.fit(train, target(train))
    check_same(model, exported(model, tmp_path), frame(400, 7))


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "xgboost-regressor", "lightgbm-regressor"])
def test_boosters_read_categories_passed_through_a_column_transformer(name: str, tmp_path: Path) -> None:
    """XGBoost and LightGBM as steps of a scikit-learn pipeline, after a ColumnTransformer with pandas
    output: their categorical columns still take category values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = frame(2000, 0)
    encode = ColumnTransformer([("num", StandardScaler(), ["x", "z"]), ("cat", "passthrough", ["colour", "grade"])])
    model = make_pipeline(encode.set_output(transform="pandas"), MODELS[name]())
    y = target(train)
    model.fit(train, y.astype(float) if "regressor" in name else y)
    check_same(model, exported(model, tmp_path, precision="float64"), frame(400, 7))
