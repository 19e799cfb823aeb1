"""Tree ensembles on a CUDA GPU against the native CPU predict, measured side by side in one run.

    python3 benchmarks/bench_trees_gpu.py [--quick]

The models of bench_trees.py (500 trees; ``--quick``: 50), each exported, loaded with device="cuda" and
run at 1,000, 100,000 and 1,000,000 rows; the native predict_proba runs on the CPU at the same sizes
(XGBoost also on the GPU, where its build supports it). Target (issue 3): >= 10x the CPU native
throughput at 1,000,000 rows. Writes benchmarks/results/trees_gpu.json and trees_gpu.md. Exits 2,
measuring nothing, where JAX sees no GPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_linear import machine
from bench_trees import models

import mle_runtime as mle

RESULTS = Path(__file__).parent / "results"
ROWS = (1_000, 100_000, 1_000_000)


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def xgboost_on_gpu(model: Any) -> Callable[[np.ndarray], Any] | None:
    try:
        gpu_model = model.__class__(**model.get_params())
        gpu_model.load_model(bytearray(model.get_booster().save_raw("ubj")))
        gpu_model.set_params(device="cuda")
        gpu_model.predict_proba(np.zeros((2, model.n_features_in_), np.float32))
    except Exception:  # (an XGBoost build without CUDA: not measured)
        return None
    return gpu_model.predict_proba


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 trees (a smoke run)")
    args = parser.parse_args()
    import jax

    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        print("no GPU visible to JAX: nothing measured (run this on a CUDA machine)", file=sys.stderr)
        return 2
    trees = 50 if args.quick else 500
    folder = Path(tempfile.mkdtemp(prefix="mle-bench-gpu-"))
    results = []
    try:
        print("training ...", file=sys.stderr, flush=True)
        fitted, X = models(trees)
        for name, model, _framework in fitted:
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            path = folder / f"{name}.mle"
            mle.export_model(model, path)
            runtime = mle.load_model(path, device="cuda")
            native_gpu = xgboost_on_gpu(model) if name == "XGBoost" else None
            r: dict[str, Any] = {"model": name}
            for n in ROWS:
                data = np.resize(X, (n, X.shape[1]))
                d32 = data.astype(np.float32)
                repeat = 3 if n < ROWS[-1] else 2
                r[f"mle_gpu_rows_s_{n}"] = n / best_of(lambda d=d32, rt=runtime: rt.run([d]), repeat)
                r[f"native_cpu_rows_s_{n}"] = n / best_of(lambda d=data, m=model: m.predict_proba(d), 1)
                if native_gpu is not None:
                    r[f"native_gpu_rows_s_{n}"] = n / best_of(lambda d=d32, f=native_gpu: f(d), repeat)
            results.append(r)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    lines = [
        f"# Tree ensembles on GPU ({time.strftime('%Y-%m-%d')}, {gpu.device_kind}; CPU {machine()}; "
        f"{trees} trees scale)",
        "",
        "| model | rows | mle on GPU | native on CPU | native on GPU | mle GPU / native CPU |",
        "|---|---|---|---|---|---|",
    ]
    targets = []
    for r in results:
        for n in ROWS:
            ours, cpu = r[f"mle_gpu_rows_s_{n}"], r[f"native_cpu_rows_s_{n}"]
            native_gpu = r.get(f"native_gpu_rows_s_{n}")
            lines.append(
                f"| {r['model']} | {n:,} | {ours:,.0f} | {cpu:,.0f} | "
                f"{'-' if native_gpu is None else f'{native_gpu:,.0f}'} | {ours / cpu:.1f}x |"
            )
        ratio = r[f"mle_gpu_rows_s_{ROWS[-1]}"] / r[f"native_cpu_rows_s_{ROWS[-1]}"]
        targets.append(
            f"{r['model']} at 1,000,000 rows: {ratio:.1f}x CPU native (target >= 10x) -> "
            f"{'MET' if ratio >= 10 else 'MISSED'}"
        )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in targets]
    RESULTS.mkdir(exist_ok=True)
    suffix = "-quick" if args.quick else ""
    meta = {"device": gpu.device_kind, "trees": trees, "jax": jax.__version__, "targets": targets}
    (RESULTS / f"trees_gpu{suffix}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    (RESULTS / f"trees_gpu{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
