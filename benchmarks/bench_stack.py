"""Many models at once: mle.stack against a Python loop over scikit-learn and over single runtimes.

    python3 benchmarks/bench_stack.py [--quick]

100 LogisticRegression models (bootstraps, a sweep over C) and 50 RandomForestClassifiers (20 trees
each, bootstraps) on 10,000 rows of 20 features: seconds for every model's ``predict_proba``, timed side
by side in one run. Target (issue 7): the stack >= 20x faster than the scikit-learn loop. Besides the
issue's two families, 20 HistGradientBoostingClassifiers (100 iterations, a sweep over the learning rate:
boosters with split tables, given float64 rows, which their float64 splits narrow per model; the other
families get float32 rows). Also reported: the stack's first call (compile) and its agreement with the
loop. Writes benchmarks/results/stack.json and stack.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_linear import machine, save_results, side_by_side
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mle_runtime as mle

ROWS = 10_000


def families(quick: bool) -> dict[str, list[Any]]:
    X, y = make_classification(20_000, 20, n_informative=10, random_state=0)
    rng = np.random.default_rng(0)
    n_linear, n_forests, n_boosters = (20, 10, 4) if quick else (100, 50, 20)
    linear, forests, boosters = [], [], []
    for _ in range(n_linear):
        rows = rng.integers(0, len(X), 5_000)
        linear.append(LogisticRegression(C=10 ** rng.uniform(-2, 2)).fit(X[rows], y[rows]))
    for i in range(n_forests):
        rows = rng.integers(0, len(X), 5_000)
        forests.append(RandomForestClassifier(20, max_depth=10, random_state=i, n_jobs=1).fit(X[rows], y[rows]))
    for i in range(n_boosters):
        rows = rng.integers(0, len(X), 5_000)
        rate = 0.05 + 0.01 * i
        boosters.append(
            HistGradientBoostingClassifier(max_iter=100, learning_rate=rate, early_stopping=False).fit(X[rows], y[rows])
        )
    return {
        f"{len(linear)} LogisticRegression": linear,
        f"{len(forests)} RandomForest (20 trees)": forests,
        f"{len(boosters)} HistGradientBoosting (100 iterations)": boosters,
    }


def bench_family(name: str, models: list[Any], X: np.ndarray, folder: Path, quick: bool) -> dict[str, Any]:
    paths = []
    for i, m in enumerate(models):
        paths.append(folder / f"{name[:8].strip()}-{i}.mle")
        mle.export_model(m, paths[-1])
    runtimes = [mle.load_model(p) for p in paths]
    t0 = time.perf_counter()
    stacked = mle.stack(runtimes)
    build_s = time.perf_counter() - t0
    given = X if "HistGradientBoosting" in name else X.astype(np.float32)
    t0 = time.perf_counter()
    proba = stacked.predict_proba(given)
    first_s = time.perf_counter() - t0
    expected = np.stack([m.predict_proba(X) for m in models])
    times = side_by_side(
        {
            "stack": lambda: stacked.predict_proba(given),
            "sklearn_loop": lambda: [m.predict_proba(X) for m in models],
            "runtime_loop": lambda: [r.predict_proba(given) for r in runtimes],
        },
        budget=2.0 if quick else 6.0,
        repeat=3 if quick else 5,
    )
    return {
        "family": name,
        "models": len(models),
        "rows": len(X),
        "stack_build_s": build_s,
        "stack_first_call_s": first_s,
        "max_abs_diff_vs_sklearn": float(np.abs(proba - expected).max()),
        **{f"{who}_s": t for who, t in times.items()},
    }


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Many models at once ({meta['date']}, {meta['machine']})",
        "",
        f"Seconds for every model's predict_proba on {ROWS:,} rows (median of turns timed side by side); "
        "the stack's first call includes its compile.",
        "",
        "| family | stack | scikit-learn loop | runtime loop | stack / sklearn loop | stack / runtime loop "
        "| first call | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['family']} | {r['stack_s']:.3f} | {r['sklearn_loop_s']:.3f} | {r['runtime_loop_s']:.3f} "
            f"| {r['sklearn_loop_s'] / r['stack_s']:.1f}x | {r['runtime_loop_s'] / r['stack_s']:.1f}x "
            f"| {r['stack_first_call_s']:.2f} | {r['max_abs_diff_vs_sklearn']:.1e} |"
        )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in meta["targets"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer models and repetitions (a smoke run)")
    args = parser.parse_args()
    X, _ = make_classification(ROWS, 20, n_informative=10, random_state=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="mle-bench-stack-") as folder:
        for name, models in families(args.quick).items():
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            results.append(bench_family(name, models, X, Path(folder), args.quick))
    targets = []
    for r in results[:2]:  # (the two families)
        ratio = r["sklearn_loop_s"] / r["stack_s"]
        targets.append(
            f"stack >= 20x the scikit-learn loop, {r['family']}: {ratio:.1f}x -> {'MET' if ratio >= 20 else 'MISSED'}"
        )
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {k: v for k, v in mle.get_version_info().items() if k != "operators"},
        "targets": targets,
    }
    text = markdown(results, meta)
    save_results("stack-quick" if args.quick else "stack", meta, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
