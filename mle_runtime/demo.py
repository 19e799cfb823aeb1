"""``mle demo``: train models on scikit-learn's bundled data sets, export them, load them back, check
the answers against scikit-learn, and compare file size, load time and speed with joblib."""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def demo_models() -> list[tuple[str, Any, Callable[..., Any]]]:
    try:
        from sklearn import datasets, decomposition, ensemble, linear_model, pipeline, preprocessing, svm
    except ImportError as e:
        raise RuntimeError("the demo trains scikit-learn models: pip install 'mle-runtime[sklearn]'") from e
    p = pipeline.make_pipeline
    return [
        (
            "breast_cancer: scaler + logistic regression",
            datasets.load_breast_cancer,
            lambda: p(preprocessing.StandardScaler(), linear_model.LogisticRegression(max_iter=1000)),
        ),
        (
            "digits: scaler + PCA(30) + logistic regression",
            datasets.load_digits,
            lambda: p(
                preprocessing.StandardScaler(),
                decomposition.PCA(30, random_state=0),
                linear_model.LogisticRegression(max_iter=2000),
            ),
        ),
        (
            "wine: robust scaler + linear SVC",
            datasets.load_wine,
            lambda: p(preprocessing.RobustScaler(), svm.LinearSVC(random_state=0)),
        ),
        (
            "diabetes: polynomial features + ridge",
            datasets.load_diabetes,
            lambda: p(preprocessing.PolynomialFeatures(2), preprocessing.StandardScaler(), linear_model.Ridge(1.0)),
        ),
        (
            "breast_cancer: random forest (200 trees)",
            datasets.load_breast_cancer,
            lambda: ensemble.RandomForestClassifier(200, random_state=0),
        ),
        (
            "diabetes: histogram gradient boosting",
            datasets.load_diabetes,
            lambda: ensemble.HistGradientBoostingRegressor(max_iter=100, random_state=0),
        ),
    ]


def _median_time(fn: Callable[[], Any], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_demo(out_dir: str | None = None) -> int:
    import joblib

    import mle_runtime as mle

    folder = Path(out_dir or tempfile.mkdtemp(prefix="mle-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"mle-runtime {mle.__version__} demo; files in {folder}\n")
    header = f"{'model':<48} {'answers':<22} {'.mle B':>8} {'joblib B':>9} {'load x':>7} {'speed x':>8}"
    print(header)
    print("-" * len(header))
    failures = 0
    for title, load_data, make in demo_models():
        X, y = load_data(return_X_y=True)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(X))
        train, test = order[: len(X) * 3 // 4], order[len(X) * 3 // 4 :]
        model = make().fit(X[train], y[train])
        stem = "".join(c if c.isalnum() else "-" for c in title).strip("-")
        result = mle.export_model(model, folder / f"{stem}.mle")
        joblib.dump(model, folder / f"{stem}.joblib")
        runtime = mle.load_model(folder / f"{stem}.mle", precision="float64")
        Xt = X[test]
        if hasattr(model, "predict_proba"):
            labels, proba = runtime.run([Xt])
            ok = bool(np.array_equal(labels, model.predict(Xt)))
            err = float(np.max(np.abs(proba - model.predict_proba(Xt))))
            answers = f"labels {'equal' if ok else 'DIFFER'}, {err:.0e}"
            ok = ok and err < 1e-9
        elif runtime.get_model_info()["metadata"]["task"] == "classifier":
            labels, _ = runtime.run([Xt])
            ok = bool(np.array_equal(labels, model.predict(Xt)))
            answers = f"labels {'equal' if ok else 'DIFFER'}"
        else:
            (pred,) = runtime.run([Xt])
            err = float(np.max(np.abs(pred - model.predict(Xt)) / np.maximum(np.abs(model.predict(Xt)), 1)))
            ok = err < 1e-9
            answers = f"values within {err:.0e}"
        failures += not ok
        load_mle = _median_time(functools.partial(mle.load_model, folder / f"{stem}.mle", precision="float64"))
        load_joblib = _median_time(functools.partial(joblib.load, folder / f"{stem}.joblib"))
        big = np.repeat(Xt, 1000 // len(Xt) + 1, axis=0)[:1000]
        predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
        runtime.run([big])
        t_mle = _median_time(functools.partial(runtime.run, [big]))
        t_sk = _median_time(functools.partial(predict, big))
        print(
            f"{title:<48} {answers:<22} {result['file_size_bytes']:>8,} {result['joblib_size_bytes']:>9,} "
            f"{load_joblib / load_mle:>6.1f}x {t_sk / t_mle:>7.1f}x"
        )
    print("\nanswers: float64 mode against scikit-learn on held-out rows; load x: joblib.load time / load_model time;")
    print("speed x: scikit-learn predict time / mle run time at 1,000 rows (both in this process).")
    print("all answers match" if not failures else f"{failures} model(s) did not match")
    return 0 if not failures else 1
