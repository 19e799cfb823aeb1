"""scikit-learn estimators whose answers take more than one product: a Gaussian process's predictive
standard deviation, latent Dirichlet allocation's E-step and a kernel density, against scikit-learn,
measured side by side in one run.

    python3 benchmarks/bench_estimators.py [--quick]

GaussianProcessRegressor (2,000 training rows, 8 features): ``predict`` and ``predict(return_std=True)``
(the deviation multiplies by an (n_train, n_train) matrix). LatentDirichletAllocation (10 topics over
1,000 terms, documents of ~60 words): ``transform``, which iterates per document until its topic weights
settle; the runtime's E-step is dense over the vocabulary where scikit-learn's visits a document's terms.
KernelDensity (gaussian, 10,000 training rows, 8 features): ``score_samples``, which scikit-learn answers
from a k-d tree and the runtime by summing every training row. Float64 precision (what scikit-learn
computes; a Gaussian process's deviation needs it). No target of an issue rests on these; the figures say
what these models cost. Writes benchmarks/results/estimators.json and estimators.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_linear import machine, record_rows_per_second, save_results
from sklearn import decomposition, gaussian_process, neighbors

import mle_runtime as mle

ROWS = (1, 1_000, 10_000)


def gaussian_process_model(quick: bool) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 500 if quick else 2_000
    X = rng.normal(size=(n + ROWS[-1], 8))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + rng.normal(scale=0.1, size=len(X))
    kernel = gaussian_process.kernels.RBF([1.0] * 8) + gaussian_process.kernels.WhiteKernel(0.01)
    model = gaussian_process.GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(X[:n], y[:n])
    return model, X[n:]


def topic_model(quick: bool) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(1)
    topics = rng.dirichlet(np.full(1_000, 0.05), size=10)
    mixtures = rng.dirichlet(np.full(10, 0.3), size=2_000 + ROWS[-1])
    counts = np.stack([rng.multinomial(60, m @ topics) for m in mixtures]).astype(np.float64)
    model = decomposition.LatentDirichletAllocation(10, max_iter=5 if quick else 10, random_state=0)
    return model.fit(counts[:2_000]), counts[2_000:]


def kernel_density(quick: bool) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(2)
    n = 2_000 if quick else 10_000
    X = rng.normal(size=(n + ROWS[-1], 8))
    return neighbors.KernelDensity(bandwidth=0.5).fit(X[:n]), X[n:]


CASES: list[tuple[str, Callable[[bool], tuple[Any, np.ndarray]], str]] = [
    ("GaussianProcessRegressor predict", gaussian_process_model, "predict"),
    ("GaussianProcessRegressor predict(return_std=True)", gaussian_process_model, "predict_std"),
    ("LatentDirichletAllocation transform", topic_model, "transform"),
    ("KernelDensity score_samples", kernel_density, "score_samples"),
]


def method(target: Any, name: str) -> Callable[[np.ndarray], Any]:
    if name == "predict_std":
        return lambda X: target.predict(X, return_std=True)
    return getattr(target, name)  # type: ignore[no-any-return]


def bench(name: str, make: Callable[[bool], tuple[Any, np.ndarray]], how: str, folder: Path, quick: bool) -> dict:
    model, X = make(quick)
    path = folder / f"{how}.mle"
    mle.export_model(model, path)
    runtime = mle.load_model(path, precision="float64")
    ours, theirs = method(runtime, how), method(model, how)
    r: dict[str, Any] = {"name": name}
    r["max_scaled_error"] = max(
        float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
        for got, expected in zip(_outputs(ours(X[:1_000])), _outputs(theirs(X[:1_000])), strict=True)
    )
    for n in ROWS:
        data = X[:n]
        budget = 0.5 if quick else 2.0
        record_rows_per_second(r, n, {"mle": lambda d=data: ours(d), "sklearn": lambda d=data: theirs(d)}, budget, 3)
        print(f"{name} @ {n:,}: {r[f'mle_rows_s_{n}']:,.0f} rows/s, scikit-learn {r[f'sklearn_rows_s_{n}']:,.0f}")
    return r


def _outputs(result: Any) -> tuple[np.ndarray, ...]:
    return tuple(result) if isinstance(result, tuple) else (result,)


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Estimators beyond one product ({meta['date']}, {meta['machine']})",
        "",
        "Rows per second, float64 precision, timed side by side; error: the largest difference from scikit-learn "
        "over 1,000 rows, over the output's largest magnitude.",
        "",
        "| model | rows | mle | scikit-learn | mle / scikit-learn | max scaled error |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for n in ROWS:
            ours, theirs = r[f"mle_rows_s_{n}"], r[f"sklearn_rows_s_{n}"]
            error = f"{r['max_scaled_error']:.1e}" if n == ROWS[0] else ""
            lines.append(f"| {r['name']} | {n:,} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | {error} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller models, shorter timings")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory() as folder:
        results = [bench(name, make, how, Path(folder), args.quick) for name, make, how in CASES]
    text = markdown(results, meta)
    print(text)
    save_results("estimators", meta, results, text)


if __name__ == "__main__":
    main()
