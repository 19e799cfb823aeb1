"""The runtime loads and runs an exported model in a process where no training framework imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mle_runtime as mle

BLOCKED = ["sklearn", "torch", "tensorflow", "keras", "xgboost", "lightgbm", "catboost", "joblib", "pandas"]

CHILD = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = set(sys.argv[3].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import mle_runtime as mle
    runtime = mle.load_model(sys.argv[1], precision="float64")
    outputs = runtime.run([np.load(sys.argv[2], allow_pickle=True)])  # (objects: categories)
    mle.inspect_model(sys.argv[1]); mle.get_version_info()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    classifier = runtime.get_model_info()["metadata"].get("task") == "classifier"
    for i, out in enumerate(outputs):
        np.save(f"{sys.argv[2]}.{i}.npy", out.astype(str) if classifier and i == 0 else out)
""")


def run_blocked(model: Any, X: np.ndarray, folder: Path, **options: Any) -> None:
    """Export ``model``, then load and run it on ``X`` in a child process where no framework imports;
    its outputs land in X.npy.<i>.npy (a classifier's labels as strings)."""
    mle.export_model(model, folder / "m.mle", **options)
    np.save(folder / "X.npy", X)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder / "m.mle"), str(folder / "X.npy"), ",".join(BLOCKED)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def test_load_and_run_without_any_framework(tmp_path: Path) -> None:
    X, y = make_classification(400, 7, n_informative=5, n_classes=3, random_state=0)
    X[::7, 2] = np.nan
    names = np.array(["low", "mid", "high"], dtype=object)[y]
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, names)
    run_blocked(model, X[:60], tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy.0.npy"), model.predict(X[:60]).astype(str))
    np.testing.assert_allclose(np.load(tmp_path / "X.npy.1.npy"), model.predict_proba(X[:60]), rtol=1e-12)


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm", "catboost", "sklearn-forest"])
def test_tree_models_run_without_their_framework(framework: str, tmp_path: Path) -> None:
    X, y = make_classification(400, 6, n_informative=4, n_classes=3, random_state=1)
    X[::5, 1] = np.nan
    if framework == "xgboost":
        import xgboost

        model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    elif framework == "lightgbm":
        import lightgbm

        model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    elif framework == "catboost":
        import catboost

        model = catboost.CatBoostClassifier(
            iterations=10, verbose=0, allow_writing_files=False, loss_function="MultiClass"
        ).fit(X, y)
    else:
        model = RandomForestClassifier(10, random_state=0).fit(X, y)
    run_blocked(model, X[:60], tmp_path)
    labels = np.asarray(model.predict(X[:60])).reshape(-1).astype(str)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy.0.npy"), labels)
    np.testing.assert_allclose(np.load(tmp_path / "X.npy.1.npy"), model.predict_proba(X[:60]), rtol=1e-5)


def test_catboost_categories_without_catboost_or_pandas(tmp_path: Path) -> None:
    """The host-side step of CatBoost's categorical features (hashing, counter tables) needs neither."""
    import catboost

    rng = np.random.default_rng(2)
    X = np.empty((300, 3), dtype=object)
    X[:, 0] = rng.normal(size=300)
    X[:, 1] = rng.choice(["red", "green", "blue", "amber"], 300)
    X[:, 2] = rng.integers(0, 9, 300)
    y = (X[:, 1] == "red") ^ (X[:, 2] % 3 == 0) ^ (X[:, 0] > 0)
    model = catboost.CatBoostClassifier(
        iterations=15, depth=3, verbose=0, allow_writing_files=False, cat_features=[1, 2]
    ).fit(X, y.astype(int))
    queries = X[:60].copy()
    queries[::4, 1] = "unseen"
    run_blocked(model, queries, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "X.npy.1.npy"), model.predict_proba(queries), rtol=1e-12)


def test_a_pytorch_network_runs_without_torch(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv1d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(20, 2)
    ).eval()
    X = np.random.default_rng(0).normal(size=(9, 3, 5)).astype(np.float32)
    run_blocked(model, X, tmp_path, input_shape=(1, 3, 5))
    with torch.no_grad():
        want = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "X.npy.0.npy"), want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_a_keras_model_runs_without_keras(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6, 3)), keras.layers.Conv1D(4, 3), keras.layers.GRU(5), keras.layers.Dense(2)]
    )
    X = np.random.default_rng(0).normal(size=(9, 6, 3)).astype(np.float32)
    run_blocked(model, X, tmp_path)
    want = model.predict(X, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "X.npy.0.npy"), want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_blocker_really_blocks(tmp_path: Path) -> None:
    code = CHILD.split("import numpy")[0] + "import sklearn\n"
    proc = subprocess.run([sys.executable, "-c", code, "", "", "sklearn"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked" in proc.stderr
