"""The command line, through subprocesses: success paths and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import SpectralEmbedding

BIN = Path(sys.executable).parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    X, y = make_classification(300, 5, n_informative=3, random_state=0)
    joblib.dump(LogisticRegression().fit(X, y), folder / "model.joblib")
    joblib.dump(SpectralEmbedding(n_components=2).fit(X), folder / "unsupported.joblib")
    np.save(folder / "X.npy", X)
    np.savetxt(folder / "X.csv", X, delimiter=",", header=",".join(f"f{i}" for i in range(5)), comments="")
    np.save(folder / "wrong.npy", X[:, :3])
    (folder / "X.txt").write_text("1 2 3 4 5\n")
    (folder / "garbage.mle").write_bytes(b"MLE\0" + bytes(100))
    (folder / "garbage.joblib").write_bytes(b"not a pickle")
    return folder


def test_export_inspect_benchmark(files: Path) -> None:
    out = cli("mle-export", "model.joblib", "model.mle", cwd=files)
    assert out.returncode == 0, out.stderr
    assert "wrote model.mle" in out.stdout and "runs code" in out.stderr
    out = cli("mle", "export", "model.joblib", "model-z.mle", "--compression", "zstd", "--json", cwd=files)
    assert out.returncode == 0 and json.loads(out.stdout)["success"]

    out = cli("mle-inspect", "model.mle", cwd=files)
    assert out.returncode == 0 and "sklearn.linear_model.LogisticRegression" in out.stdout
    assert "recommendations" in out.stdout and "tensor" in out.stdout
    info = json.loads(cli("mle", "inspect", "model.mle", "--json", cwd=files).stdout)
    assert info["basic_info"]["metadata"]["task"] == "classifier"

    for data in ("X.npy", "X.csv"):
        out = cli("mle-benchmark", "model.mle", data, "--runs", "5", "--json", cwd=files)
        assert out.returncode == 0, out.stderr
        stats = json.loads(out.stdout)
        assert stats["num_runs"] == 5 and stats["batch_size"] == 300
    out = cli("mle", "benchmark", "model.mle", "X.npy", "--runs", "20", "--progress", cwd=files)
    assert out.returncode == 0 and "20/20" in out.stderr and "throughput" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mle-inspect", "absent.mle"), "no such model file"),
        (("mle-inspect", "garbage.mle"), "header"),
        (("mle-benchmark", "model.mle", "wrong.npy"), "expected 5 features, got 3"),
        (("mle-benchmark", "model.mle", "absent.npy"), "no such data file"),
        (("mle-benchmark", "model.mle", "X.txt"), "unsupported data format '.txt'"),
        (("mle-export", "absent.joblib", "o.mle"), "no such file"),
        (("mle-export", "garbage.joblib", "o.mle"), "not a readable joblib/pickle"),
        (("mle-export", "unsupported.joblib", "o.mle"), "SpectralEmbedding is not supported"),
        (("mle", "benchmark", "garbage.mle", "X.npy"), "header"),
    ],
)
def test_user_errors_are_one_line(files: Path, args: tuple[str, ...], message: str) -> None:
    if not (files / "model.mle").exists():
        cli("mle-export", "model.joblib", "model.mle", cwd=files)
    out = cli(*args, cwd=files)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if not line.startswith("note:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in out.stderr, out.stderr


def test_usage_error_exits_2(files: Path) -> None:
    assert cli("mle", "frobnicate", cwd=files).returncode == 2


def test_demo(tmp_path: Path) -> None:
    out = cli("mle", "demo", "--out", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "all answers match" in out.stdout
    from mle_runtime.demo import demo_models

    assert len(list(tmp_path.glob("*.mle"))) == len(demo_models())
