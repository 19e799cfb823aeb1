"""Linear family against joblib, scikit-learn and ONNX Runtime, measured side by side in one run.

    python3 benchmarks/bench_linear.py [--quick]

Writes benchmarks/results/linear.json and linear.md. Ratios matter, not absolute times: the machines
are shared and noisy. Targets (issue 2): load >= 10x faster than joblib.load on the largest model; file
no larger than joblib's; throughput >= scikit-learn's at >= 1,000 rows; warm-cache fresh-process first
prediction within 1.5x of joblib's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn import datasets, decomposition, linear_model, pipeline, preprocessing

import mle_runtime as mle

RESULTS = Path(__file__).parent / "results"
ROWS = (1, 1_000, 100_000)


def models() -> list[tuple[str, Any, np.ndarray]]:
    """(name, fitted model, held-out rows); the last one is the largest."""
    out = []
    X, y = datasets.make_classification(6000, 100, n_informative=40, n_classes=10, random_state=0)
    out.append(("logreg 100 features x 10 classes", linear_model.LogisticRegression(max_iter=300).fit(X, y), X))
    X, y = datasets.make_classification(6000, 200, n_informative=60, n_classes=5, random_state=1)
    pipe = pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        decomposition.PCA(50, random_state=0),
        linear_model.LogisticRegression(max_iter=500),
    )
    out.append(("scaler + PCA(50) + logreg, 200 features", pipe.fit(X, y), X))
    X, y = datasets.make_regression(6000, 50, noise=1.0, random_state=2)
    out.append(("ridge 50 features", linear_model.Ridge().fit(X, y), X))
    X = np.random.default_rng(3).normal(size=(2500, 2000))
    out.append(
        (
            "PCA(800) of 2,000 features (largest)",
            decomposition.PCA(800, svd_solver="randomized", random_state=0).fit(X),
            X,
        )
    )
    return out


def sklearn_fn(model: Any) -> Callable[[np.ndarray], Any]:
    for name in ("predict_proba", "transform", "predict"):
        if hasattr(model, name):
            return getattr(model, name)
    raise TypeError(model)


def per_call(fn: Callable[[], Any], budget: float = 0.5, repeat: int = 5) -> float:
    """Median seconds per call over `repeat` timed loops, each sized to take about budget/repeat."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(budget / repeat / one))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - t0) / loops)
    return float(np.median(times))


def machine() -> str:
    """The processor as results name it: its model (speed ratios moved by up to 2x between the Intel and the
    AMD machines this project is benchmarked on), architecture and cores."""
    model = platform.processor()
    try:
        named = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        model = named[0].split(":", 1)[1].strip() if named else model
    except OSError:  # (no /proc: not Linux)
        pass
    return ", ".join(part for part in (model, platform.machine(), f"{os.cpu_count()} cores") if part)


def save_results(stem: str, meta: dict[str, Any], results: list[dict[str, Any]], text: str) -> None:
    """benchmarks/results/<stem>.json (meta and results) and <stem>.md (``text``)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(text)


def record_rows_per_second(
    r: dict[str, Any], n: int, calls: dict[str, Callable[[], Any]], budget: float, repeat: int
) -> None:
    """``r["<who>_rows_s_<n>"]`` for each of ``calls`` (a call on n rows), timed side by side."""
    for who, seconds in side_by_side(calls, budget, repeat).items():
        r[f"{who}_rows_s_{n}"] = n / seconds


def side_by_side(
    calls: dict[str, Callable[[], Any]], budget: float, repeat: int, pause: float = 0.3
) -> dict[str, float]:
    """Median seconds per call of each of ``calls``, timed in turns (one loop of each, ``repeat`` times):
    machine noise and the threads a library leaves spinning after its calls fall on every contender
    alike, not on whichever happens to be timed after another. Each loop is sized to take about
    budget/repeat; ``pause`` lets the previous contender's threads go to sleep."""
    loops = {}
    for who, fn in calls.items():
        fn()
        t0 = time.perf_counter()
        fn()
        loops[who] = max(1, int(budget / repeat / max(time.perf_counter() - t0, 1e-7)))
    times: dict[str, list[float]] = {who: [] for who in calls}
    for _ in range(repeat):
        for who, fn in calls.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            for _ in range(loops[who]):
                fn()
            times[who].append((time.perf_counter() - t0) / loops[who])
    return {who: float(np.median(t)) for who, t in times.items()}


def onnx_session(model: Any, X: np.ndarray) -> Callable[[np.ndarray], Any] | None:
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
    except ImportError:
        return None
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onx = to_onnx(model, X[:1].astype(np.float32), options=options, target_opset=17)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda data: session.run(None, {name: data})


def fresh_process(code: str, env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_model(name: str, model: Any, X: np.ndarray, folder: Path, quick: bool) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() else "-" for c in name)[:40]
    mle_path, joblib_path, x_path = folder / f"{slug}.mle", folder / f"{slug}.joblib", folder / f"{slug}.npy"
    export = mle.export_model(model, mle_path)
    joblib.dump(model, joblib_path)
    np.save(x_path, X[:100])
    r: dict[str, Any] = {
        "model": name,
        "mle_bytes": mle_path.stat().st_size,
        "joblib_bytes": joblib_path.stat().st_size,
        "export_ms": export["export_time_ms"],
    }

    loads = {
        "load": lambda: mle.load_model(mle_path),
        # On CPU the default load leaves placing the parameters with JAX to the first run; as_jax() places them.
        "load_placed": lambda: mle.load_model(mle_path).as_jax(),
        # cache=False casts float64 weights to float32 on every load instead of mapping the kept copy.
        "load_uncached": lambda: mle.load_model(mle_path, cache=False),
        "load_always": lambda: mle.load_model(mle_path, verify_checksums="always"),
        # float64 precision keeps scikit-learn's float64 weights as they are: zero-copy from the mmap.
        "load_float64": lambda: mle.load_model(mle_path, precision="float64"),
        "joblib_load": lambda: joblib.load(joblib_path),
    }
    for who, seconds in side_by_side(loads, 0.5, 5, pause=0.05).items():
        r[f"{who}_ms"] = seconds * 1e3

    env = dict(os.environ)
    predict = sklearn_fn(model).__name__
    joblib_code = (
        f"import joblib, numpy as np; m = joblib.load({str(joblib_path)!r}); m.{predict}(np.load({str(x_path)!r}))"
    )
    mle_code = (
        f"import numpy as np, mle_runtime as mle; mle.load_model({str(mle_path)!r}).run([np.load({str(x_path)!r})])"
    )
    repeat = 2 if quick else 5
    r["fresh_joblib_s"] = fresh_process(joblib_code, env, repeat)
    cold = []
    for _ in range(repeat):
        env["MLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="mle-bench-cold-")
        cold.append(fresh_process(mle_code, env, 1))
    r["fresh_mle_cold_s"] = float(np.median(cold))
    env["MLE_CACHE_DIR"] = str(folder / "warm-cache")
    fresh_process(mle_code, env, 1)
    r["fresh_mle_warm_s"] = fresh_process(mle_code, env, repeat)

    runtime = mle.load_model(mle_path)
    reference = sklearn_fn(model)
    session = onnx_session(model, X)
    for n in ROWS:
        data = np.resize(X, (n, X.shape[1]))
        data32 = data.astype(np.float32)
        calls = {"mle": lambda d=data32: runtime.run([d]), "sklearn": lambda d=data: reference(d)}
        if session is not None:
            calls["onnx"] = lambda d=data32: session(d)
        record_rows_per_second(r, n, calls, 0.3 if quick else 1.0, 5)
    return r


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Linear family benchmark ({meta['date']}, {meta['machine']})",
        "",
        "Sizes in bytes; load in ms, in-process, after warm-up: `load` is the default (float32 precision;",
        "every tensor's CRC-32 checked once per version of a file over 192 KiB of data, and the exporter's own",
        "file counts as checked; float64 weights mapped from the float32 copy kept by an earlier load;",
        "on CPU the parameters reach JAX on the first run), `+ placed` is the default load followed by",
        "placing the parameters with JAX (`load_model(path).as_jax()`),",
        "`uncached` casts float64 weights to float32 on every load (cache=False),",
        "`load always` checks every CRC on every load (verify_checksums='always'),",
        "`load float64` is precision='float64', where float64 weights are used from the mmap without a cast;",
        "fresh process: wall seconds from interpreter start to first prediction on 100 rows;",
        "throughput in rows/s (float32 input for mle and ONNX Runtime, float64 for scikit-learn).",
        "",
        "| model | .mle | joblib | load | + placed | uncached | load always | load float64 | joblib.load "
        "| fresh cold | fresh warm | fresh joblib |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['mle_bytes']:,} | {r['joblib_bytes']:,} | {r['load_ms']:.3f} "
            f"| {r['load_placed_ms']:.3f} | {r['load_uncached_ms']:.3f} "
            f"| {r['load_always_ms']:.3f} | {r['load_float64_ms']:.3f} | {r['joblib_load_ms']:.3f} "
            f"| {r['fresh_mle_cold_s']:.2f} "
            f"| {r['fresh_mle_warm_s']:.2f} | {r['fresh_joblib_s']:.2f} |"
        )
    lines += throughput_table(results, ROWS)
    lines += ["", "## Targets", ""] + [f"- {t}" for t in meta["targets"]]
    return "\n".join(lines) + "\n"


def throughput_table(results: list[dict[str, Any]], rows: tuple[int, ...]) -> list[str]:
    """Markdown rows of mle, scikit-learn and ONNX Runtime throughput; where ORT has no figure, the
    result's "onnx" status (why), else "-"."""
    lines = [
        "",
        "| model | rows | mle | scikit-learn | ONNX Runtime | mle / sklearn | mle / ORT |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for n in rows:
            ours, sk, onnx = r[f"mle_rows_s_{n}"], r[f"sklearn_rows_s_{n}"], r.get(f"onnx_rows_s_{n}")
            cells = (r.get("onnx", "-"), "-") if onnx is None else (f"{onnx:,.0f}", f"{ours / onnx:.2f}x")
            lines.append(
                f"| {r['model']} | {n:,} | {ours:,.0f} | {sk:,.0f} | {cells[0]} | {ours / sk:.2f}x | {cells[1]} |"
            )
    return lines


def targets(results: list[dict[str, Any]]) -> list[str]:
    largest = results[-1]
    out = []
    for key, how in (
        ("load_ms", "default (float32)"),
        ("load_placed_ms", "default, parameters then placed with JAX (as_jax())"),
        ("load_uncached_ms", "cache=False (float32, cast on every load)"),
        ("load_float64_ms", "precision='float64'"),
        ("load_always_ms", "verify_checksums='always'"),
    ):
        ratio = largest["joblib_load_ms"] / largest[key]
        out.append(
            f"load >= 10x faster than joblib.load on the largest model, {how}: {ratio:.1f}x -> "
            f"{'MET' if ratio >= 10 else 'MISSED'}"
        )
    for r in results:
        ratio = r["mle_bytes"] / r["joblib_bytes"]
        out.append(
            f"file no larger than joblib's, {r['model']}: {ratio:.3f} of joblib -> {'MET' if ratio <= 1 else 'MISSED'}"
        )
    for r in results:
        for n in ROWS[1:]:
            ratio = r[f"mle_rows_s_{n}"] / r[f"sklearn_rows_s_{n}"]
            out.append(
                f"throughput >= scikit-learn at {n:,} rows, {r['model']}: {ratio:.2f}x -> "
                f"{'MET' if ratio >= 1 else 'MISSED'}"
            )
    for r in results:
        ratio = r["fresh_mle_warm_s"] / r["fresh_joblib_s"]
        out.append(
            f"warm-cache fresh-process first prediction within 1.5x of joblib, {r['model']}: "
            f"{ratio:.2f}x -> {'MET' if ratio <= 1.5 else 'MISSED'}"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mle-bench-"))
    results = []
    try:
        for name, model, X in models():
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            results.append(bench_model(name, model, X, folder, args.quick))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "python": platform.python_version(),
        "versions": mle.get_version_info(),
        "targets": targets(results),
    }
    meta["versions"].pop("operators")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "linear.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = markdown(results, meta)
    (RESULTS / "linear.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
