"""predict_file and `mle predict`: chunked batch prediction over .npy, CSV and Parquet files, equal to the
framework's predictions, written atomically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import mle_runtime as mle
from mle_runtime.batch import predict_file
from mle_runtime.cli import load_data

X, y = make_classification(2_345, 6, n_informative=4, random_state=0)
MODEL = RandomForestClassifier(10, max_depth=6, random_state=0).fit(X, y)
COLUMNS = [f"f{i}" for i in range(X.shape[1])]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "forest.mle"
    mle.export_model(MODEL, path)
    return path


def _check_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["label", "probabilities_0", "probabilities_1"]
    np.testing.assert_array_equal(frame["label"].to_numpy(), MODEL.predict(X))
    proba = frame[["probabilities_0", "probabilities_1"]].to_numpy()
    np.testing.assert_allclose(proba, MODEL.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_csv_and_parquet_with_string_columns(tmp_path) -> None:
    """A model with string columns (categories) reads them as text from a CSV, with or without a header,
    an empty field a missing value, and from Parquet's string and dictionary columns."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=3_000),
            "city": rng.choice(np.array(["Oslo", "Lima", "Pune, IN", None], dtype=object), 3_000),
            "rooms": rng.integers(1, 6, 3_000).astype(float),
        }
    )
    frame.loc[::7, "rooms"] = np.nan
    labels = (frame["city"] == "Lima").to_numpy() ^ (frame["size"] > 0).to_numpy()
    encode = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder()), ["city"]),
        (SimpleImputer(), ["rooms"]),
        remainder="passthrough",
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, labels)
    mle.export_model(model, tmp_path / "m.mle")
    expected = model.predict_proba(frame)

    frame.to_csv(tmp_path / "header.csv", index=False)
    frame.to_csv(tmp_path / "bare.csv", index=False, header=False)
    frame.to_parquet(tmp_path / "plain.parquet")
    frame.astype({"city": "category"}).to_parquet(tmp_path / "dictionary.parquet")
    for name in ("header.csv", "bare.csv", "plain.parquet", "dictionary.parquet"):
        out = tmp_path / f"out-{name}"
        done = predict_file(tmp_path / "m.mle", tmp_path / name, out, chunk_rows=1_000)
        got = pd.read_csv(out) if name.endswith(".csv") else pd.read_parquet(out)
        assert done["rows"] == len(frame), name
        np.testing.assert_allclose(got[["probabilities_0", "probabilities_1"]], expected, rtol=1e-5, atol=1e-7)
    runtime = mle.load_model(tmp_path / "m.mle")  # `mle benchmark` reads a CSV the same way
    np.testing.assert_allclose(runtime.predict_proba(load_data(tmp_path / "header.csv", runtime)), expected, rtol=1e-5)
    (tmp_path / "bad.csv").write_text("1.5,Oslo,2\n0.5,Lima,many\n")
    with pytest.raises(ValueError, match="column 2 must hold numbers"):
        predict_file(tmp_path / "m.mle", tmp_path / "bad.csv", tmp_path / "bad-out.csv")
    assert not (tmp_path / "bad-out.csv").exists()


def test_file_columns_are_taken_by_the_models_feature_names(tmp_path) -> None:
    """A CSV header's or a Parquet file's columns are the model's features by name, in any order, other
    columns left out, as a DataFrame's are (they were read in the file's order: reordered columns gave
    wrong answers); a column the model reads that the file lacks is refused, one it drops may be absent."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=500),
            "city": rng.choice(np.array(["Oslo", "Lima", "Pune"], dtype=object), 500),
            "rooms": rng.integers(1, 6, 500).astype(float),
            "note": rng.normal(size=500),
        }
    )
    labels = (frame["city"] == "Lima").to_numpy() ^ (frame["size"] > 0).to_numpy()
    encode = make_column_transformer((OneHotEncoder(), ["city"]), ("passthrough", ["size", "rooms"]))  # drops note
    cases = [(make_pipeline(encode, LogisticRegression()), frame), (LogisticRegression(), frame.drop(columns=["city"]))]
    for model, data in cases:
        model.fit(data, labels)
        mle.export_model(model, tmp_path / "m.mle")
        expected = model.predict_proba(data)
        shuffled = data[list(reversed(data.columns))].assign(id=np.arange(len(data)))
        shuffled.to_csv(tmp_path / "in.csv", index=False)
        shuffled.to_parquet(tmp_path / "in.parquet")
        for name in ("in.csv", "in.parquet"):
            out = tmp_path / f"out-{name}"
            predict_file(tmp_path / "m.mle", tmp_path / name, out, chunk_rows=128)
            got = pd.read_csv(out) if name.endswith(".csv") else pd.read_parquet(out)
            np.testing.assert_allclose(got[["probabilities_0", "probabilities_1"]], expected, rtol=1e-5, atol=1e-7)
        lacking = data.drop(columns=["rooms"])
        lacking.to_csv(tmp_path / "lacking.csv", index=False)
        with pytest.raises(ValueError, match=r"lacks the model's feature columns \['rooms'\]"):
            predict_file(tmp_path / "m.mle", tmp_path / "lacking.csv", tmp_path / "never.csv")
        if "city" in data:  # (the ColumnTransformer drops note: a file without it answers the same)
            data.drop(columns=["note"]).to_parquet(tmp_path / "no-note.parquet")
            predict_file(tmp_path / "m.mle", tmp_path / "no-note.parquet", tmp_path / "no-note-out.parquet")
            got = pd.read_parquet(tmp_path / "no-note-out.parquet")
            np.testing.assert_allclose(got[["probabilities_0", "probabilities_1"]], expected, rtol=1e-5, atol=1e-7)


def test_npy_in_chunks_that_do_not_divide_the_rows(tmp_path, model_path) -> None:
    np.save(tmp_path / "in.npy", X)
    done = predict_file(model_path, tmp_path / "in.npy", tmp_path / "labels.npy", chunk_rows=500)
    assert done["rows"] == len(X) and done["chunks"] == 5 and done["outputs"] == ["label"]
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), MODEL.predict(X))
    seen = []
    predict_file(
        mle.load_model(model_path),
        tmp_path / "in.npy",
        tmp_path / "proba.npy",
        outputs=["probabilities"],
        chunk_rows=1_000,
        progress=lambda rows, total: seen.append((rows, total)),
    )
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), MODEL.predict_proba(X), rtol=1e-5, atol=1e-7)
    assert seen == [(1_000, len(X)), (2_000, len(X)), (len(X), len(X))]


def test_csv_with_a_header_and_parquet(tmp_path, model_path) -> None:
    pd.DataFrame(X, columns=COLUMNS).to_csv(tmp_path / "in.csv", index=False)
    predict_file(model_path, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=777)
    _check_frame(pd.read_csv(tmp_path / "out.csv"))
    np.savetxt(tmp_path / "bare.csv", X, delimiter=",")
    predict_file(model_path, tmp_path / "bare.csv", tmp_path / "bare-out.csv", chunk_rows=4_000)
    _check_frame(pd.read_csv(tmp_path / "bare-out.csv"))
    pd.DataFrame(X, columns=COLUMNS).to_parquet(tmp_path / "in.parquet", row_group_size=300)
    done = predict_file(model_path, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=1_000)
    assert done["rows"] == len(X)
    _check_frame(pd.read_parquet(tmp_path / "out.parquet"))


def test_a_failure_midway_leaves_the_old_output_and_no_temporary_files(tmp_path, model_path) -> None:
    bad = X.copy()
    bad[1_500, 2] = np.inf  # scikit-learn refuses infinities: the third chunk fails
    np.save(tmp_path / "in.npy", bad)
    (tmp_path / "out.npy").write_bytes(b"previous result")
    with pytest.raises(ValueError, match="infinity"):
        predict_file(model_path, tmp_path / "in.npy", tmp_path / "out.npy", chunk_rows=600)
    assert (tmp_path / "out.npy").read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "out.npy"]


def test_bad_requests_are_clear_errors(tmp_path, model_path) -> None:
    np.save(tmp_path / "in.npy", X)
    with pytest.raises(ValueError, match="input's format"):
        predict_file(model_path, tmp_path / "in.npy", tmp_path / "out.csv")
    with pytest.raises(ValueError, match="holds one array"):
        predict_file(model_path, tmp_path / "in.npy", tmp_path / "out.npy", outputs=["label", "probabilities"])
    with pytest.raises(ValueError, match="unknown outputs"):
        predict_file(model_path, tmp_path / "in.npy", tmp_path / "out.npy", outputs=["nope"])
    with pytest.raises(FileNotFoundError):
        predict_file(model_path, tmp_path / "missing.npy", tmp_path / "out.npy")
    with pytest.raises(ValueError, match="unsupported file type"):
        predict_file(model_path, tmp_path / "in.txt", tmp_path / "out.txt")
    (tmp_path / "words.csv").write_text("a,b\nx,y\n")
    with pytest.raises(ValueError, match="not a CSV of numbers"):
        predict_file(model_path, tmp_path / "words.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.csv").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mle_runtime.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_predict(tmp_path, model_path) -> None:
    pd.DataFrame(X, columns=COLUMNS).to_parquet(tmp_path / "in.parquet")
    done = _cli("predict", str(model_path), str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert done.returncode == 0, done.stderr
    assert f"{len(X):,} rows" in done.stdout
    _check_frame(pd.read_parquet(tmp_path / "out.parquet"))
    np.save(tmp_path / "in.npy", X)
    proba = _cli(
        "predict", str(model_path), str(tmp_path / "in.npy"), str(tmp_path / "p.npy"), "--outputs", "probabilities"
    )
    assert proba.returncode == 0, proba.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), MODEL.predict_proba(X), rtol=1e-5, atol=1e-7)
    missing = _cli("predict", str(model_path), str(tmp_path / "nope.npy"), str(tmp_path / "o.npy"))
    assert missing.returncode == 1 and "no such input file" in missing.stderr and "Traceback" not in missing.stderr


def test_a_killed_job_leaves_nothing_under_the_final_name(tmp_path, model_path) -> None:
    rows = np.resize(X, (400_000, X.shape[1]))
    np.save(tmp_path / "in.npy", rows)
    script = textwrap.dedent(
        f"""
        import sys
        from mle_runtime.batch import predict_file
        predict_file({str(model_path)!r}, {str(tmp_path / "in.npy")!r}, {str(tmp_path / "out.npy")!r},
                     chunk_rows=2_000, progress=lambda done, total: print(done, flush=True))
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for _ in range(5):  # a few chunks written, then killed
            assert proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    time.sleep(0.1)
    assert not (tmp_path / "out.npy").exists()
