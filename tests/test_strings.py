"""String categories: the host-side vocabulary step maps each string column to codes before the
compiled graph; encoders, imputers and the models after them answer as scikit-learn does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)

import mle_runtime as mle


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "colour": rng.choice(np.array(["red", "green", "blue", None], dtype=object), n),
            "size": rng.choice(["S", "M", "L", "XL"], n),
            "x": rng.normal(size=n),
            "count": rng.integers(0, 5, n).astype(float),
        }
    )


def target(df: pd.DataFrame) -> np.ndarray:
    return ((df["colour"] == "red").to_numpy() ^ (df["x"] > 0).to_numpy()) | (df["size"] == "XL").to_numpy()


def held_out() -> pd.DataFrame:
    test = frame(300, 2)
    test.loc[:5, "colour"] = ["purple", None, np.nan, "blue", "RED", "green"]  # unseen, missing, case
    test.loc[6:7, "size"] = ["XS", "M"]
    return test


MODELS = {
    "onehot-imputed-logreg": lambda: make_pipeline(
        ColumnTransformer(
            [
                (
                    "colour",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="none"), OneHotEncoder(handle_unknown="ignore")
                    ),
                    ["colour"],
                ),
                ("size", OneHotEncoder(handle_unknown="ignore", drop="first"), ["size"]),
                ("num", StandardScaler(), ["x", "count"]),
            ]
        ),
        LogisticRegression(),
    ),
    "ordinal-most-frequent-hgb": lambda: make_pipeline(
        ColumnTransformer(
            [
                (
                    "colour",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    ),
                    ["colour"],
                ),
                ("size", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan), ["size"]),
            ],
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(max_iter=20, categorical_features=[0, 1], random_state=0),
    ),
    "infrequent-warn-logreg": lambda: make_pipeline(
        ColumnTransformer(
            [
                ("colour", OneHotEncoder(max_categories=3, handle_unknown="warn"), ["colour"]),
                (
                    "size",
                    OrdinalEncoder(max_categories=3, handle_unknown="use_encoded_value", unknown_value=9),
                    ["size"],
                ),
            ],
            remainder="passthrough",
        ),
        LogisticRegression(),
    ),
    "onehot-missing-category-ridge": lambda: make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["colour", "size"])],
            remainder="passthrough",
        ),
        Ridge(),
    ),
    "target-encoded-logreg": lambda: make_pipeline(
        ColumnTransformer([("cat", TargetEncoder(), ["colour", "size"])], remainder="passthrough"),
        LogisticRegression(),
    ),
}


@pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")  # scikit-learn's, for drop + ignore
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_string_pipelines_match_scikit_learn(name: str, precision: str, tmp_path: Path) -> None:
    train = frame(800, 1)
    model = MODELS[name]().fit(train, target(train).astype(float) if "ridge" in name else target(train))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision=precision)
    test = held_out()
    tol = 1e-12 if precision == "float64" else 1e-5
    if "ridge" in name:
        want = model.predict(test)
        np.testing.assert_allclose(runtime.predict(test), want, rtol=0, atol=tol * np.abs(want).max())
        return
    np.testing.assert_array_equal(runtime.predict(test), model.predict(test))
    want = model.predict_proba(test)
    np.testing.assert_allclose(runtime.predict_proba(test), want, rtol=0, atol=tol * np.abs(want).max())
    # a numpy object array in the DataFrame's column order answers the same
    np.testing.assert_array_equal(runtime.predict(test.to_numpy(dtype=object)), model.predict(test))


def test_vocabularies_are_data_in_the_manifest(tmp_path: Path) -> None:
    train = frame(400, 1)
    mle.export_model(MODELS["onehot-imputed-logreg"]().fit(train, target(train)), tmp_path / "m.mle")
    metadata = mle.inspect_model(tmp_path / "m.mle")["basic_info"]["metadata"]
    assert metadata["string_columns"] == {"0": ["blue", "green", "none", "red"], "1": ["L", "M", "S", "XL"]}


def test_a_column_transformer_takes_a_dataframes_columns_by_name(tmp_path: Path) -> None:
    """As scikit-learn's ColumnTransformer: columns in any order, others beside them left out, a column it
    drops free to be absent; a column it reads that is absent raises, naming it."""
    train = frame(400, 1).assign(row_id=np.arange(400))
    columns = ColumnTransformer(
        [("codes", OneHotEncoder(handle_unknown="ignore"), ["colour", "size"]), ("x", StandardScaler(), ["x"])]
    )  # (count and row_id dropped)
    model = make_pipeline(columns, LogisticRegression()).fit(train, target(train))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    test = held_out().assign(row_id=-1)
    shuffled = test[["x", "row_id", "size", "colour"]].assign(label="extra")  # count absent: dropped
    np.testing.assert_allclose(runtime.predict_proba(shuffled), model.predict_proba(shuffled), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(runtime.predict(test), model.predict(test))
    with pytest.raises(ValueError, match=r"the DataFrame lacks columns the model reads: \['size'\]"):
        runtime.predict(test.drop(columns="size"))
    plain = LogisticRegression().fit(train[["x", "count"]], target(train))  # (no ColumnTransformer: by position)
    mle.export_model(plain, tmp_path / "plain.mle")
    with pytest.raises(ValueError, match="same names in a different order"):
        mle.load_model(tmp_path / "plain.mle").predict(test[["count", "x"]])


def test_bad_string_inputs_are_value_errors(tmp_path: Path) -> None:
    train = frame(400, 1)
    mle.export_model(MODELS["onehot-imputed-logreg"]().fit(train, target(train)), tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    with pytest.raises(ValueError, match="take strings; pass a DataFrame"):
        runtime.predict(np.zeros((2, 4)))
    bad = held_out()
    bad["x"] = bad["x"].astype(object)
    bad.loc[0, "x"] = "seven"
    with pytest.raises(ValueError, match="column 2 must hold numbers"):
        runtime.predict(bad)
    bad = held_out()
    bad["size"] = bad["size"].astype(object)
    bad.loc[0, "size"] = 3
    with pytest.raises(ValueError, match="column 1 holds strings"):
        runtime.predict(bad)


@pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")
def test_nullable_pandas_columns(tmp_path: Path) -> None:
    """A nullable numeric column (pandas' Float64) converts without boxing; its NA is a missing value,
    refused in a column the model does not accept NaN in."""
    train = frame(400, 1)
    model = MODELS["onehot-imputed-logreg"]().fit(train, target(train))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    test = held_out()
    nullable = test.astype({"count": "Float64"})
    np.testing.assert_array_equal(runtime.predict(nullable), model.predict(test))
    nullable.loc[3, "count"] = pd.NA
    with pytest.raises(ValueError, match="contains NaN"):
        runtime.predict(nullable)


def test_a_missing_string_encoded_as_a_number_is_accepted(tmp_path: Path) -> None:
    """OrdinalEncoder turns a missing string it saw in training into encoded_missing_value; when that
    is a number, the model after it never sees NaN, and the runtime accepts the missing value as
    scikit-learn does."""
    train = frame(400, 1)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-1)
    model = make_pipeline(
        ColumnTransformer([("colour", encoder, ["colour"])], remainder="drop"), LogisticRegression()
    ).fit(train, target(train))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    test = frame(50, 3)
    test.loc[:2, "colour"] = [None, np.nan, "red"]
    np.testing.assert_array_equal(runtime.predict(test), model.predict(test))


def test_checks_inside_a_pipeline_raise_as_scikit_learn_does(tmp_path: Path) -> None:
    """Where a step deep inside a pipeline raises (an unknown category with handle_unknown="error", a
    value past the spline knots with extrapolation="error"), the model raises, naming the check that
    failed and its rows; the other rows answer."""
    train = frame(400, 1)
    encode = ColumnTransformer(
        [
            ("size", OneHotEncoder(handle_unknown="error"), ["size"]),
            ("x", SplineTransformer(extrapolation="error"), ["x"]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(train, target(train))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    test = frame(20, 2)
    np.testing.assert_array_equal(runtime.predict(test), model.predict(test))
    unknown = test.assign(size=test["size"].where(test.index != 3, "XXL"))
    far = test.assign(x=test["x"].where(test.index != 5, 100.0))
    for bad, message, row in ((unknown, "Found unknown categories", 3), (far, "beyond the limits of the knots", 5)):
        with pytest.raises(ValueError, match=message):
            model.predict(bad)
        with pytest.raises(ValueError, match=rf"{message}.*\(rows \[{row}\]\)"):
            runtime.predict(bad)


NONE_ENCODERS = {
    "one-hot": lambda: OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
    "one-hot-error": lambda: OneHotEncoder(sparse_output=False),
    "ordinal": lambda: OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
    "target": lambda: TargetEncoder(),
    "most-frequent-one-hot": lambda: make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(sparse_output=False, handle_unknown="ignore")
    ),
    "impute-none-one-hot": lambda: make_pipeline(
        SimpleImputer(strategy="constant", fill_value="zz", missing_values=None),
        OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
    ),
    "constant-one-hot": lambda: make_pipeline(
        SimpleImputer(strategy="constant", fill_value="zz"), OneHotEncoder(sparse_output=False, handle_unknown="ignore")
    ),
}


def _strings_with(missing: str, n: int, seed: int) -> pd.DataFrame:
    """A column of strings with None ("none"), NaN ("nan") or both ("both") among them, as objects
    (pandas 3 makes a column of strings its str dtype, None NaN there), and a target."""
    rng = np.random.default_rng(seed)
    values = rng.choice(["a", "b", "c", "None", "NaN"], n).astype(object)
    values[values == "None"] = None if missing in ("none", "both") else "a"
    values[values == "NaN"] = np.nan if missing in ("nan", "both") else "b"
    return pd.DataFrame({"s": pd.Series(values, dtype=object), "x": rng.normal(size=n)})


@pytest.mark.parametrize("fitted_on", ["none", "nan", "both"])
@pytest.mark.parametrize("encoder", list(NONE_ENCODERS))
def test_none_is_a_category_of_its_own_as_in_scikit_learn(encoder: str, fitted_on: str, tmp_path: Path) -> None:
    """scikit-learn's encoders keep None as a category distinct from NaN (a missing value), unknown where
    training had none, and SimpleImputer replaces only the missing value it is given (NaN passes None on;
    most_frequent may fill with None). The runtime codes None apart from NaN: every output, and every
    refusal, as scikit-learn's, for columns holding None, NaN or both. (It read None as NaN: one-hot rows
    of the NaN category, imputed Nones, encodings of the missing value.)"""
    train = _strings_with(fitted_on, 300, 1)
    model = make_pipeline(ColumnTransformer([("s", NONE_ENCODERS[encoder](), ["s"])]), Ridge())
    try:
        model.fit(train, train["x"])
    except ValueError:  # (missing_values=None on a column holding NaN: scikit-learn refuses it)
        assert encoder == "impute-none-one-hot" and fitted_on != "none"
        return
    mle.export_model(model, tmp_path / "m.mle")
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "m.mle", precision=precision)
        for missing in ("none", "nan", "both"):
            rows = _strings_with(missing, 120, 2)
            rows.loc[0, "s"] = "unseen"
            try:
                expected = model.predict(rows)
            except ValueError:
                with pytest.raises(ValueError):
                    runtime.predict(rows)
                continue
            tol = 1e-12 if precision == "float64" else 1e-5
            np.testing.assert_allclose(
                runtime.predict(rows), expected, rtol=tol, atol=tol, err_msg=f"{precision}, {missing}"
            )


def test_a_file_without_a_none_code_reads_none_as_missing() -> None:
    """Files written before None was a category of its own have no ``none_code``: their runtime step
    still reads None as NaN, as they were exported to expect."""
    from mle_runtime.inputs import NONE_CODE, encode_strings
    from mle_runtime.metadata import decode_string_columns

    column = np.array([["a"], [None], [np.nan], ["b"], ["c"]], dtype=object)
    before = decode_string_columns({"string_columns": {"0": ["a", "b"]}})
    now = decode_string_columns({"string_columns": {"0": ["a", "b"]}, "none_code": NONE_CODE})
    np.testing.assert_array_equal(encode_strings(column, "X", before)[:, 0], [0, np.nan, np.nan, 1, -1])
    np.testing.assert_array_equal(encode_strings(column, "X", now)[:, 0], [0, NONE_CODE, np.nan, 1, -1])
