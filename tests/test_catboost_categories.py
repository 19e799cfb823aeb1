"""CatBoost models with categorical features: values hashed as CatBoost hashes them, counter features
(CTRs) over single features and combinations (with binarised float features and one-hot tests), one-hot
splits; answers against CatBoost's predict and leaves against its calc_leaf_indexes, on the training
values, unseen ones and missing floats; the input forms CatBoost takes, and the ones it refuses."""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import catboost
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from trees_support import our_leaves

import mle_runtime as mle
from mle_runtime import catboost_categories, catboost_tables
from mle_runtime.catboost_categories import decode_catboost_categories
from mle_runtime.cityhash import cityhash64
from mle_runtime.errors import FormatError, InputError, UnsupportedModelError
from mle_runtime.reader import read_mle

CATEGORICAL = ["colour", "size", "flag", "code"]
CB = dict(verbose=0, random_seed=0, allow_writing_files=False, cat_features=CATEGORICAL)
# every counter type CatBoost trains on a CPU, over combinations of up to three features
EVERY_CTR = dict(
    max_ctr_complexity=3,
    simple_ctr=["Borders", "Buckets", "Counter", "BinarizedTargetMeanValue"],
    combinations_ctr=["Borders", "Buckets", "Counter", "BinarizedTargetMeanValue"],
)


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x0": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue", "amber", "violet", "teal"], n),
            "x1": rng.normal(size=n),
            "size": rng.choice(list("SMLX"), n),
            "flag": rng.choice(["yes", "no"], n),  # (two values: a one-hot feature)
            "code": rng.integers(0, 25, n).astype(str),
        }
    )
    df.loc[rng.random(n) < 0.05, "x1"] = np.nan
    return df


def target(df: pd.DataFrame, kind: str) -> np.ndarray:
    mixed = (df.colour.str.len() + df["size"].map(ord) + (df.flag == "yes") * 3) % 2
    label = (mixed ^ (df.x0 > 0) ^ (df.code.astype(int) % 3 == 0)).to_numpy().astype(int)
    if kind == "multiclass":
        return label + (df.x1.fillna(0) > 0.5).to_numpy()
    if kind == "regression":
        return df.x0.to_numpy() + 2 * label
    return label


CASES: dict[str, tuple[Any, str]] = {
    "binary": (lambda: catboost.CatBoostClassifier(iterations=40, depth=4, **CB), "binary"),
    "every-ctr": (lambda: catboost.CatBoostClassifier(iterations=60, depth=5, **EVERY_CTR, **CB), "binary"),
    # Buckets and Borders over three classes; NaN above every border, in the projections' float tests too
    "multiclass-nan-max": (
        lambda: catboost.CatBoostClassifier(iterations=40, depth=5, nan_mode="Max", **EVERY_CTR, **CB),
        "multiclass",
    ),
    "multiclass": (
        lambda: catboost.CatBoostClassifier(iterations=30, depth=4, max_ctr_complexity=2, **CB),
        "multiclass",
    ),
    "regression": (
        lambda: catboost.CatBoostRegressor(iterations=40, depth=4, max_ctr_complexity=3, **CB),
        "regression",
    ),
    "lossguide": (lambda: catboost.CatBoostRegressor(iterations=20, grow_policy="Lossguide", **CB), "regression"),
}


@functools.cache
def fitted(case: str) -> tuple[Any, pd.DataFrame]:
    make, kind = CASES[case]
    train = frame(1500, 0)
    model = make().fit(train, target(train, kind))
    test = frame(400, 1)
    test.loc[::7, "colour"] = "unseen"  # values no table holds, and combinations none holds
    test.loc[::5, "code"] = "99"
    return model, test


@functools.cache
def exported(case: str, folder: Path) -> Path:
    path = folder / f"{case}.mle"
    mle.export_model(fitted(case)[0], path)
    return path


def assert_close(ours: Any, ref: Any, tol: float, what: str) -> None:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, what
    scale = np.maximum(np.abs(ref).max(axis=0), 1e-300)
    assert float(np.max(np.abs(ours - ref) / scale)) <= tol, what


def test_values_hash_as_catboost_hashes_them(tmp_path: Path) -> None:
    """CityHash64 1.0's low 32 bits, as CatBoost writes them into a model's JSON: strings of every length
    up to ~600 bytes (its 0-16, 17-32, 33-64 byte cases and the 64-byte blocks), multibyte ones included."""
    rng = random.Random(0)
    letters = "abcXYZ019 _-é漢"
    values = list(dict.fromkeys([""] + ["".join(rng.choice(letters) for _ in range(k)) for k in range(1, 200)]))
    df = pd.DataFrame({"x": np.arange(len(values), dtype=float), "c": values})
    model = catboost.CatBoostClassifier(iterations=2, depth=2, verbose=0, allow_writing_files=False, cat_features=["c"])
    model.fit(df, np.arange(len(values)) % 2)
    model.save_model(str(tmp_path / "m.json"), format="json", pool=catboost.Pool(df, cat_features=["c"]))
    written = json.loads((tmp_path / "m.json").read_text())["features_info"]["cat_features_hash"]
    theirs = {e["value"]: e["hash"] % (1 << 32) for e in written}
    assert len(theirs) == len(values)
    assert {v: cityhash64(v.encode()) & 0xFFFFFFFF for v in values} == theirs


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_catboost(case: str, precision: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    model, test = fitted(case)
    runtime = mle.load_model(exported(case, tmp_path_factory.getbasetemp()), precision=precision)
    tol = 1e-12 if precision == "float64" else 1e-5
    for n in (1, 7, len(test)):
        X = test.iloc[:n]
        if isinstance(model, catboost.CatBoostClassifier):
            np.testing.assert_array_equal(runtime.predict(X), model.predict(X).reshape(n), err_msg=f"{case} at {n}")
            assert_close(runtime.predict_proba(X), model.predict_proba(X), tol, f"{case} [{precision}] at {n}")
        else:
            assert_close(runtime.predict(X), model.predict(X), tol, f"{case} [{precision}] at {n}")


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("case", ["binary", "every-ctr", "multiclass", "multiclass-nan-max"])
def test_leaves_match_catboosts(case: str, precision: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every tree's leaf, for every row: the counter values land on the same side of every border."""
    model, test = fitted(case)
    path = exported(case, tmp_path_factory.getbasetemp())
    graph_input = mle.load_model(path, precision=precision)._prepare([test])[0]
    theirs = np.asarray(model.calc_leaf_indexes(catboost.Pool(test, cat_features=CATEGORICAL)))
    np.testing.assert_array_equal(our_leaves(path, graph_input, precision), theirs)


@pytest.mark.parametrize("case", ["every-ctr", "multiclass"])
def test_row_by_row_and_array_paths_agree(case: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Small batches go row by row in Python integers, larger ones in arrays: the same columns."""
    _, test = fitted(case)
    runtime = mle.load_model(exported(case, tmp_path_factory.getbasetemp()), precision="float64")
    step = next(s for s in runtime._strings.values() if isinstance(s, catboost_categories.CatBoostCategories))
    assert len(test) > catboost_categories.ROW_BY_ROW
    by_arrays = runtime._prepare([test])[0]
    rows = catboost_categories.ROW_BY_ROW
    by_rows = np.vstack([runtime._prepare([test.iloc[i : i + rows]])[0] for i in range(0, len(test), rows)])
    np.testing.assert_array_equal(by_rows, by_arrays)
    assert by_arrays.shape[1] == step.input_width + step.width


@pytest.mark.parametrize("case", ["every-ctr", "multiclass-nan-max"])
def test_seen_values_blocks_of_rows_and_hashing_agree(
    case: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counters over one feature are read from the tables of values seen before (SeenValues); batches whose
    values do not fit there are hashed and searched for; large batches go in blocks of rows; a full cache
    starts over: the same columns every way."""
    _, test = fitted(case)
    path = exported(case, tmp_path_factory.getbasetemp())

    def fresh() -> tuple[Any, Any]:
        runtime = mle.load_model(path, precision="float64")
        step = next(s for s in runtime._strings.values() if isinstance(s, catboost_categories.CatBoostCategories))
        return runtime, step.seen

    runtime, seen = fresh()
    expected = runtime._prepare([test])[0]
    assert seen._entries > 0
    monkeypatch.setattr(catboost_categories, "BLOCK_ROWS", 64)
    np.testing.assert_array_equal(fresh()[0]._prepare([test])[0], expected)
    first, second = test.iloc[:200], test.iloc[200:]
    sizes = []
    for part in (first, second):
        runtime, seen = fresh()
        runtime._prepare([part])
        sizes.append(seen._entries)
    assert sizes[0] <= sizes[1] < seen._entries + sizes[0]
    monkeypatch.setattr(catboost_tables, "MAX_ENTRIES", sizes[1])  # room for the second half's values alone
    runtime, seen = fresh()
    np.testing.assert_array_equal(runtime._prepare([first])[0], expected[:200])
    np.testing.assert_array_equal(runtime._prepare([second])[0], expected[200:])  # (after starting over)
    assert seen._entries == sizes[1]
    np.testing.assert_array_equal(runtime._prepare([test])[0], expected)  # (too many values: hashed)
    monkeypatch.setattr(catboost_tables, "MAX_ENTRIES", 0)  # (nothing kept: every batch hashed)
    runtime, seen = fresh()
    np.testing.assert_array_equal(runtime._prepare([test])[0], expected)
    rows = catboost_categories.ROW_BY_ROW  # (the row path, hashing too)
    by_rows = np.vstack([runtime._prepare([test.iloc[i : i + rows]])[0] for i in range(0, len(test), rows)])
    np.testing.assert_array_equal(by_rows, expected)
    assert seen._entries == 0


def test_threads_share_the_seen_values(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Threads predicting on one runtime, each adding values the others have not seen: each gets the
    answers a runtime of its own gives."""
    _, test = fitted("every-ctr")
    path = exported("every-ctr", tmp_path_factory.getbasetemp())
    parts = [test.iloc[i::4] for i in range(4)]
    want = [mle.load_model(path).predict_proba(part) for part in parts]
    shared = mle.load_model(path)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda part: [shared.predict_proba(part) for _ in range(5)], parts))
    for ours, theirs in zip(got, want, strict=True):
        for answer in ours:
            np.testing.assert_array_equal(answer, theirs)


@pytest.mark.parametrize("case", ["every-ctr", "multiclass-nan-max"])
def test_every_counter_kind_and_element_is_exercised(case: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """(So that the cases above cover them: combinations with float borders, NaN above them in the second,
    and one-hot tests.)"""
    path = exported(case, tmp_path_factory.getbasetemp())
    entry = read_mle(path).metadata["catboost_categories"]
    kinds = {"Borders", "Buckets", "Counter"} if case.startswith("multiclass") else set(EVERY_CTR["simple_ctr"])
    assert {c["kind"] for c in entry["ctrs"]} >= kinds
    elements = [e for p in entry["projections"] for e in p["elements"]]
    assert {e[0] for e in elements} == {"float", "exact"}
    assert any(e[0] == "float" and e[3] == (case == "multiclass-nan-max") for e in elements)
    assert max(len(p["categorical"]) for p in entry["projections"]) >= 2
    assert entry["one_hot"]


def test_input_forms_catboost_takes(tmp_path: Path) -> None:
    """A DataFrame of integer and bool categories (hashed as their digits, a bool as 1 or 0), the same as
    strings of digits, as pandas categoricals, in an object array, and in an integer array: the same
    answers as CatBoost's."""
    rng = np.random.default_rng(3)
    n = 600
    given = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(-3, 40, n), "c": rng.random(n) < 0.5})
    y = ((given.b % 4 == 0) ^ given.c ^ (given.a > 0)).to_numpy().astype(int)
    model = catboost.CatBoostClassifier(
        iterations=30, depth=3, verbose=0, random_seed=0, allow_writing_files=False, cat_features=["b", "c"]
    ).fit(given, y)
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    want = model.predict_proba(given)
    forms = {
        "frame": given,
        "digits": given.assign(b=given.b.astype(str), c=given.c.astype(int).astype(str)),
        "categoricals": given.assign(b=pd.Categorical(given.b), c=pd.Categorical(given.c)),
        "objects": given.to_numpy(dtype=object),
    }
    for what, X in forms.items():
        assert_close(runtime.predict_proba(X), want, 1e-12, what)
    integers = given.assign(a=np.round(given.a * 3)).to_numpy(dtype=np.int64)
    assert_close(runtime.predict_proba(integers), model.predict_proba(integers), 1e-12, "an integer array")
    floating = given.astype({"b": object})  # a float equal to an integer seen before is still refused
    floating.iloc[0, 1] = float(given.b[0])
    with pytest.raises(InputError, match="column 1 is a categorical feature"):
        runtime.predict(floating)


def test_inputs_catboost_refuses_are_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    model, test = fitted("binary")
    runtime = mle.load_model(exported("binary", tmp_path_factory.getbasetemp()))
    for bad in (None, np.nan, 2.5):
        X = test.iloc[:5].astype({"colour": object})
        X.iloc[2, 1] = bad
        with pytest.raises(InputError, match="column 1 is a categorical feature"):
            runtime.predict(X)
    X = test.iloc[:30].astype({"colour": object})
    X.iloc[2, 1] = "red\udc80"  # (a lone surrogate: refused, and nothing of its batch kept)
    with pytest.raises(InputError, match="column 1 holds 'red\\\\udc80', which is not valid UTF-8"):
        runtime.predict(X)
    assert_close(runtime.predict_proba(test), model.predict_proba(test), 1e-5, "after a refused batch")
    with pytest.raises(InputError, match="expected 6 features"):
        runtime.predict(test.iloc[:5, :5])
    with pytest.raises(InputError, match="take strings"):
        runtime.predict(np.zeros((3, 6)))


def test_infinities_are_taken_as_catboost_takes_them(tmp_path_factory: pytest.TempPathFactory) -> None:
    """+-inf in the float columns beside categorical ones, row by row and in arrays: CatBoost reads them
    as numbers past every border, and so does the runtime."""
    model, test = fitted("binary")
    runtime = mle.load_model(exported("binary", tmp_path_factory.getbasetemp()))
    for rows in (5, 100):
        X = test.iloc[:rows].copy()
        X.iloc[rows - 1, 2], X.iloc[0, 0] = np.inf, -np.inf
        np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
        assert_close(runtime.predict_proba(X), model.predict_proba(X), 1e-5, f"infinities, {rows} rows")


TENSORS = {"keys": np.array([3, 9, 7], dtype=np.uint64), "counts": np.arange(1.0, 7.0), "floats": np.zeros(3)}


def test_the_step_is_checked_when_a_file_is_read() -> None:
    good = {
        "input_width": 2,
        "columns": [1],
        "projections": [{"categorical": [0], "elements": [["float", 0, 0.5, False]]}],
        "keys": "keys",
        "counts": "counts",
        "sha256": "",
        "tables": [{"keys": [0, 2], "counts": [0, 2], "denominator": 0}],
        "ctrs": [
            {
                "projection": 0,
                "table": 0,
                "kind": "Borders",
                "target_border": 0,
                "prior_num": 0.5,
                "prior_denom": 1,
                "shift": 0,
                "scale": 15,
            }
        ],
        "one_hot": [],
    }
    (step,) = decode_catboost_categories({"catboost_categories": good}, TENSORS).values()
    np.testing.assert_array_equal(step.counters.ctrs[0].values, np.float32([2.5 / 4 * 15, 4.5 / 8 * 15, 0.5 * 15]))
    for change in ({"columns": [2]}, {"ctrs": None}, {"input_width": "2"}):  # (read at load)
        with pytest.raises(FormatError, match="catboost_categories"):
            decode_catboost_categories({"catboost_categories": {**good, **change}}, TENSORS)
    for change in (  # (read at first use)
        {"tables": [{"keys": [1, 2], "counts": [0, 2], "denominator": 0}]},  # (9, 7: unsorted)
        {"tables": [{"keys": [0, 2], "counts": [4, 2], "denominator": 0}]},  # (past the counts)
        {"tables": [{"keys": [0, 2], "counts": [0, 0], "denominator": 0}]},
        {"tables": [{"keys": [0, -1], "counts": [0, 2], "denominator": 0}]},
        {"keys": "floats"},
        {"counts": "absent"},
        {"ctrs": [{**good["ctrs"][0], "kind": "FeatureFreq"}]},
        {"ctrs": [{**good["ctrs"][0], "table": 1}]},
        {"projections": [{"categorical": [1], "elements": []}]},
        {"projections": [{"categorical": [0], "elements": [["float", 5, 0.5, False]]}]},
    ):
        (step,) = decode_catboost_categories({"catboost_categories": {**good, **change}}, TENSORS).values()
        with pytest.raises(FormatError, match="catboost_categories"):
            _ = step.counters


def test_refusals(tmp_path: Path) -> None:
    model, _ = fitted("binary")
    step = make_pipeline(FunctionTransformer(), model)
    step.fit(frame(300, 2), target(frame(300, 2), "binary"))
    with pytest.raises(UnsupportedModelError, match="categorical feature colour"):
        mle.export_model(step, tmp_path / "p.mle")
    texts = pd.DataFrame({"x": np.arange(60.0), "t": [f"word{i % 5} other{i % 3}" for i in range(60)]})
    text_model = catboost.CatBoostClassifier(
        iterations=3, verbose=0, allow_writing_files=False, text_features=["t"]
    ).fit(texts, np.arange(60) % 2)
    with pytest.raises(UnsupportedModelError, match="text feature t"):
        mle.export_model(text_model, tmp_path / "t.mle")
    assert not (tmp_path / "p.mle").exists() and not (tmp_path / "t.mle").exists()


def test_stacks_only_models_that_count_alike(tmp_path: Path) -> None:
    """A stack codes its input once, with model 0's step: models whose counter tables differ are refused."""
    paths = []
    for seed in (0, 1):
        train = frame(500, 10 + seed)
        options = {**CB, "cat_features": ["colour"], "simple_ctr": ["Counter"], "max_ctr_complexity": 1}
        model = catboost.CatBoostClassifier(iterations=3, depth=2, one_hot_max_size=1, **options)
        model.fit(train[["x0", "colour"]], train.colour.isin(["red", "blue"]) ^ (train.x0 > 1))
        paths.append(tmp_path / f"{seed}.mle")
        mle.export_model(model, paths[-1])
    test = frame(30, 3)[["x0", "colour"]]
    (twice,) = mle.stack([paths[0], paths[0]]).run([test])[1:]
    single = mle.load_model(paths[0]).predict_proba(test)
    np.testing.assert_array_equal(twice, np.stack([single, single]))
    test.iloc[4, 0] = np.inf  # (taken in the caller's float columns, as one model takes it)
    (twice,) = mle.stack([paths[0], paths[0]]).run([test])[1:]
    np.testing.assert_array_equal(twice[1], mle.load_model(paths[0]).predict_proba(test))
    with pytest.raises(ValueError, match="catboost categories differ"):
        mle.stack(paths)


@pytest.mark.parametrize("suffix", ["cbm", "json"])
def test_cli_exports_catboosts_own_files(suffix: str, tmp_path: Path) -> None:
    """``mle export`` on CatBoost's .cbm and JSON (whose counter tables come first in the file)."""
    model, test = fitted("binary")
    model.save_model(str(tmp_path / f"m.{suffix}"), format=suffix)
    mle_bin = Path(sys.executable).parent / "mle-export"
    done = subprocess.run([str(mle_bin), f"m.{suffix}", "m.mle"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "runs code" not in done.stderr  # (read as CatBoost's file, not as a pickle)
    assert_close(mle.load_model(tmp_path / "m.mle").predict_proba(test), model.predict_proba(test), 1e-5, suffix)
