"""DataFrame pipelines fed the column dtypes pandas users have, held to scikit-learn's answers.

    python3 benchmarks/fuzz_frames.py

A frame of a numeric, an integer and a string column, each variant changing one column's dtype or its
missing values (pandas' category, string and Arrow strings, nullable Int64 / Float64 / boolean, float32,
None and NaN in a column of objects), goes through mixed-type pipelines (imputers and encoders in a
ColumnTransformer before a linear model or HistGradientBoosting, native categories) and through LightGBM,
XGBoost (the string column as a pandas category) and CatBoost (as strings). Each is exported and answers in
both precisions: probabilities within 1e-5 (float32) and 1e-12 (float64; XGBoost's own float32 sums:
1e-6) of the framework's, the same refusal where the framework refuses the rows. Its first run found None
read as NaN in string columns and trees after a ColumnTransformer's passed-through columns not narrowed in
float32 precision. Writes benchmarks/results/frames.json and .md; exit 1 on any difference. Two minutes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

import mle_runtime as mle

RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num": np.round(rng.normal(size=n), 2),
            "int": rng.integers(0, 5, n),
            "s": pd.Series(rng.choice(["a", "b", "c"], n), dtype=object),
        }
    )


def _every(k: int) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda d: np.arange(len(d)) % k == 0


VARIANTS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "object": lambda d: d,
    "category": lambda d: d.assign(s=d["s"].astype("category")),
    "string": lambda d: d.assign(s=d["s"].astype("string")),
    "string-pyarrow": lambda d: d.assign(s=d["s"].astype("string[pyarrow]")),
    "Int64": lambda d: d.assign(int=d["int"].astype("Int64")),
    "Float64": lambda d: d.assign(num=d["num"].astype("Float64")),
    "float32": lambda d: d.assign(num=d["num"].astype("float32")),
    "bool": lambda d: d.assign(int=d["int"] > 2),
    "boolean": lambda d: d.assign(int=(d["int"] > 2).astype("boolean")),
    "object-None": lambda d: d.assign(s=d["s"].mask(_every(5)(d), None)),
    "object-NaN": lambda d: d.assign(s=d["s"].mask(_every(5)(d), np.nan)),
    "object-None-NaN": lambda d: d.assign(s=d["s"].mask(_every(5)(d), None).mask(_every(7)(d), np.nan)),
    "category-NaN": lambda d: d.assign(s=d["s"].astype("category").mask(_every(5)(d))),
}


def pipelines() -> Iterator[tuple[str, Any]]:
    numeric = ["num", "int"]
    one_hot = OneHotEncoder(handle_unknown="ignore")
    yield (
        "impute-one-hot-logreg",
        make_pipeline(
            ColumnTransformer(
                [
                    ("n", StandardScaler(), numeric),
                    ("c", make_pipeline(SimpleImputer(strategy="most_frequent"), one_hot), ["s"]),
                ]
            ),
            LogisticRegression(),
        ),
    )
    yield (
        "ordinal-hgb",
        make_pipeline(
            ColumnTransformer(
                [
                    ("n", "passthrough", numeric),
                    (
                        "c",
                        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                        ["s"],
                    ),
                ]
            ),
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
        ),
    )
    yield (
        "target-kbins-hgb",
        make_pipeline(
            ColumnTransformer(
                [
                    ("b", KBinsDiscretizer(4, encode="ordinal", quantile_method="linear"), ["num"]),
                    ("t", TargetEncoder(), ["s"]),
                ],
                remainder="passthrough",
            ),
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
        ),
    )
    yield (
        "hgb-native-categories",
        HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype", random_state=0),
    )


def boosters() -> Iterator[tuple[str, Any]]:
    """Gradient-boosting libraries on the frame's string column as a pandas category (CatBoost: as strings)."""
    import catboost
    import lightgbm
    import xgboost

    yield "lightgbm-categories", lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, min_child_samples=5, verbose=-1)
    yield "xgboost-categories", xgboost.XGBClassifier(n_estimators=20, max_depth=3, enable_categorical=True)
    yield (
        "catboost-strings",
        catboost.CatBoostClassifier(
            iterations=20, depth=3, cat_features=["s"], verbose=0, thread_count=1, allow_writing_files=False
        ),
    )


def as_booster_input(name: str, d: pd.DataFrame) -> pd.DataFrame:
    """The string column as each library takes it: a category (its categories fixed, so that the held-out
    rows' codes are the training ones), or strings for CatBoost (a missing one as "NA")."""
    values = d["s"].astype(object)
    if name.startswith("catboost"):
        return d.assign(s=values.where(values.notna(), "NA").astype(str))
    return d.assign(s=pd.Categorical(values, categories=["a", "b", "c"]))


def check(model: Any, rows: pd.DataFrame, folder: Path, float64_tolerance: float = 1e-12) -> dict[str, Any]:
    """The runtime's answers in both precisions against the framework's."""
    try:
        expected = model.predict_proba(rows)
    except ValueError:
        expected = None
    mle.export_model(model, folder / "m.mle")
    out: dict[str, Any] = {}
    for precision, tol in {**TOLERANCE, "float64": float64_tolerance}.items():
        runtime = mle.load_model(folder / "m.mle", precision=precision)
        try:
            ours = runtime.predict_proba(rows)
        except ValueError as e:
            out[precision] = "both refuse" if expected is None else f"refused: {str(e)[:120]}"
            continue
        if expected is None:
            out[precision] = "scikit-learn refuses, the runtime answers"
            continue
        error = float(np.max(np.abs(ours - expected)))
        out[precision] = "ok" if error <= tol else f"off by {error:.3g}"
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    started, results = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, make in VARIANTS.items():
            train, rows = make(frame(400, 0)), make(frame(300, 1))
            y = (train["num"].astype(float) > 0).to_numpy() ^ (train["s"].astype(object) == "a").to_numpy()
            for name, model in pipelines():
                try:
                    model.fit(train, y)
                except (TypeError, ValueError) as e:  # (what scikit-learn itself does not take)
                    results.append({"variant": variant, "model": name, "skipped": f"{type(e).__name__}: {e}"[:120]})
                    continue
                results.append({"variant": variant, "model": name, **check(model, rows, Path(tmp))})
            if variant.startswith("string"):  # (the boosters read the string column as a category alike)
                continue
            for name, model in boosters():
                model.fit(as_booster_input(name, train), y)
                exact = 1e-6 if name.startswith("xgboost") else 1e-12  # (XGBoost sums in float32 itself)
                checked = check(model, as_booster_input(name, rows), Path(tmp), exact)
                results.append({"variant": variant, "model": name, **checked})
    differ = [r for r in results if "skipped" not in r and any(r[p] not in ("ok", "both refuse") for p in TOLERANCE)]
    seconds = time.perf_counter() - started
    summary = (
        f"{len(results)} runs (a dtype variant, a model) in {seconds:.0f} s; {len(differ)} differ from the framework."
    )
    lines = [f"# DataFrame dtypes through mixed-type pipelines ({time.strftime('%Y-%m-%d')})", "", summary, ""]
    lines += ["| variant | pipeline | float32 | float64 |", "|---|---|---|---|"]
    for r in results:
        cells = [r.get("float32", r.get("skipped", "")), r.get("float64", "")]
        lines.append(f"| {r['variant']} | {r['model']} | {cells[0]} | {cells[1]} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frames.json").write_text(json.dumps({"summary": summary, "results": results}, indent=1) + "\n")
    (RESULTS / "frames.md").write_text("\n".join(lines) + "\n")
    print(summary)
    for r in differ:
        print(r)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
