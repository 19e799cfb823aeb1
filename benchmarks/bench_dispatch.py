"""Small batches on the CPU: the runtime's synchronous client against JAX's dispatch thread.

    python3 benchmarks/bench_dispatch.py [--quick]

A batch of one chunk runs on the runtime's own synchronous CPU client (``devices.inline_cpu_device``) when
its rows times the model's parameter bytes stay within ``runtime.INLINE_WORK_BYTES`` or its rows within
``runtime.INLINE_ROWS``; anything else on JAX's client, which hands each call to a worker thread. This
measures both ways for the same model and batch, side by side in one process (runtimes of one file, one
kept on the synchronous client for every batch of one chunk, one off it), so that the rule can be checked
on other machines: where it says inline, inline should be the faster.
Writes benchmarks/results/dispatch.json and dispatch.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from bench_linear import machine, save_results, side_by_side
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier

import mle_runtime as mle
from mle_runtime import buckets
from mle_runtime.runtime import INLINE_ROWS, INLINE_WORK_BYTES

BATCHES = (1, 8, 64, 128, 256, 1_000, 2_048, 4_096)


def models(quick: bool) -> list[tuple[str, Any, np.ndarray]]:
    import lightgbm
    import xgboost

    trees = 50 if quick else 500
    X, y = make_classification(8000, 50, n_informative=25, random_state=0)
    Xr, yr = make_regression(6000, 50, noise=1.0, random_state=2)
    Xc, yc = make_classification(6000, 100, n_informative=40, n_classes=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((256, 256), max_iter=5 if quick else 20, random_state=0).fit(X, y)
    return [
        ("Ridge, 50 features", Ridge().fit(Xr, yr), Xr),
        ("LogisticRegression, 100 features x 10 classes", LogisticRegression(max_iter=300).fit(Xc, yc), Xc),
        ("MLPClassifier (256, 256)", mlp, X),
        (
            f"XGBoost, {trees} trees, depth 8",
            xgboost.XGBClassifier(n_estimators=trees, max_depth=8, random_state=0).fit(X, y),
            X,
        ),
        (
            f"LightGBM, {trees} trees, 63 leaves",
            lightgbm.LGBMClassifier(n_estimators=trees, num_leaves=63, random_state=0, verbose=-1).fit(X, y),
            X,
        ),
    ]


def bench_model(name: str, model: Any, X: np.ndarray, folder: Path, quick: bool) -> list[dict[str, Any]]:
    path = folder / "m.mle"
    mle.export_model(model, path)
    inline, shared, ruled = mle.load_model(path), mle.load_model(path), mle.load_model(path)
    inline._inline_rows = 1 << 62  # every batch of one chunk inline, whatever its work
    shared._inline_rows = 0  # every batch on JAX's client
    out = []
    for n in BATCHES:
        data = np.resize(X, (n, X.shape[1])).astype(np.float32)
        times = side_by_side(
            {"inline": lambda d=data: inline.run([d]), "jax": lambda d=data: shared.run([d])},
            0.4 if quick else 1.5,
            3 if quick else 7,
            pause=0.1,
        )
        bucket = buckets.bucket_for(n, ruled._max_bucket)
        device = ruled._inline_device
        out.append(
            {
                "model": name,
                "rows": n,
                "inline_us": times["inline"] * 1e6,
                "jax_us": times["jax"] * 1e6,
                "rule_runs_inline": device is not None and ruled._target(bucket)[0] is device,
            }
        )
    return out


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Small batches on the CPU: synchronous client against JAX's dispatch ({meta['date']}, {meta['machine']})",
        "",
        f"Microseconds a `run` call, both ways, timed in turns; `rule` is where the runtime sends the batch "
        f"(inline while rows x parameter bytes <= {INLINE_WORK_BYTES:,} or rows <= {INLINE_ROWS}).",
        "",
        "| model | rows | inline | JAX's client | JAX / inline | rule |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['rows']:,} | {r['inline_us']:,.0f} | {r['jax_us']:,.0f} "
            f"| {r['jax_us'] / r['inline_us']:.2f}x | {'inline' if r['rule_runs_inline'] else 'JAX'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 trees, shorter timings (a smoke run)")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, X in models(args.quick):
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            results += bench_model(name, model, X, Path(tmp), args.quick)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "inline_work_bytes": INLINE_WORK_BYTES,
        "inline_rows": INLINE_ROWS,
    }
    text = markdown(results, meta)
    save_results("dispatch", meta, results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
