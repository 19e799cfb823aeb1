"""Refit the conformance zoo's models on the other data sets of their kind, held to the conformance test.

    python3 benchmarks/fuzz_zoo_data.py [--only SUBSTRING] [--timeout 120]

tests/zoo.py fits each model on one data set. What a runtime gets wrong on other data (a constant target,
repeated or integer values, far-out rows, string labels, NaN) shows when the same model is refitted on
the others: each case goes through every other data set of its group (classification sets, regression
sets) that scikit-learn fits and predicts on, and through tests/test_conformance.py::test_matches_sklearn
in both precisions. Failures are matched against KNOWN (differences understood and left, each with its
reason); any other is new and makes the script exit 1. Its first runs found trees of a constant target
that failed to load, string labels in the wrong dtype (DummyClassifier, GaussianProcessClassifier) and NaN
refused where scikit-learn takes it (RandomTreesEmbedding, the dummies, CalibratedClassifierCV and the
other meta-estimators that hand X to their parts). Writes
benchmarks/results/zoo_data.json and .md. About an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from fuzzing import RunTimeout, time_limit

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

GROUPS = [
    [
        "binary",
        "multiclass",
        "strings",
        "odd_ints",
        "bools",
        "float_labels",
        "nan_binary",
        "small_classes",
        "small_binary",
        "categorical",
        "counts",
        "small_ints_multiclass",
    ],
    [
        "regression",
        "correlated",
        "positive",
        "positive_features",
        "small_regression",
        "marker",
        "small_ints",
        "small_ints_nonnegative",
    ],
]

# (case id prefix, data set or "*") -> why the difference is left. Checked by hand against a float64 or
# long-double computation where the reason says so.
KNOWN = {
    ("binarizer", "marker"): "float64 mode, float32 input: scikit-learn compares float32(0.2) > 0.2 in "
    "float32 (False); the runtime widens the input first (True)",
    ("dummy-", "*"): "DummyClassifier's \"<U\" labels are as wide as the class it answers; the runtime's as "
    "the widest class (values equal)",
    ("nystroem-poly", "*"): "ill-conditioned normalization (condition ~5e7 where the degree-2 features number "
    "fewer than the components): scikit-learn's own float64 error against long double is 1.3e-9",
    ("polynomial-count-sketch", "positive_features"): "columns of magnitude 2 to 4e7 mixed by the FFT: "
    "scikit-learn's float64 error against a long-double convolution 2.2e-10, the runtime's 5.8e-10",
    ("local-outlier-factor", "*"): "equal distances on repeated or integer values: which of the tied rows are "
    "neighbours (scikit-learn's tree order, the runtime's lowest rows) moves the local densities",
    ("affinity-propagation", "marker"): "a row equally far from two exemplars (values rounded to 0.1)",
    ("kernel-density", "*"): "scikit-learn's tree-based sum approximates far from the data (its issue #25799; "
    "-51 where no training row is within an Epanechnikov kernel's reach); the runtime's is exact (checked "
    "against a direct logsumexp)",
    ("quantile-uniform", "marker"): "float32 mode: a repeated quantile such as 0.3 is not a float32; a float32 "
    "input next to it is off it for scikit-learn and on it (nearest rounding) for the runtime, which keeps "
    "float64 inputs equal to it exact (both cannot be had with one float32 value)",
    ("quantile-small-ints", "marker"): "as quantile-uniform@marker",
    ("quantile-normal-logreg", "*"): "scikit-learn's float32 path loses QuantileTransformer's 1e-7 bound "
    "(x + 1e-7 rounds to x at |x| >= 1), so an end quantile maps to 1.16 instead of 5.2, its float64 "
    "answer, which the runtime gives for either input; elsewhere float32 at 1.4e-5",
    ("gaussian-process", "*"): "float32 precision (a Cholesky solve in float32; labels where one-vs-rest "
    "probabilities tie within it); in float64, kernels whose terms cancel (terms up to 4e6 summing to 1.2 on "
    "integer features: 1.5e-8 apart, scikit-learn's own sum 3e-8 from a long-double one)",
    ("grid-search", "strings"): "float32 probabilities at 1.03e-5",
    ("nystroem-svc", "small_ints_multiclass"): "float32 decision values at 1.37e-5",
    # neighbours among equal distances: integer counts, small integer codes, values rounded to 0.1
    **{
        (prefix, "*"): "equal distances on integer or repeated values: which tied training rows are the "
        "neighbours (scikit-learn's heap or tree order, the runtime's lowest rows; tests/test_conformance.py::"
        "test_neighbours_among_many_equal_distances checks the runtime's rule) moves votes, means and graphs"
        for prefix in (
            "knn-",
            "nearest-neighbors",
            "k-neighbors-transformer",
            "isomap",
            "locally-linear",
        )
    },
    ("stacking-regressor", "*"): "its KNeighborsRegressor part: equal distances, as knn-",
    ("transformed-target-scaler", "*"): "its KNeighborsRegressor: equal distances, as knn-",
    ("one-vs-rest-binary", "small_ints_multiclass"): "float32 decision values at 2.1e-5 (SVC kernel sums)",
    ("calibrated-temperature", "float_labels"): "float32 labels where two classes' probabilities are within "
    "2e-8 of each other (0.25000053 against 0.25000055)",
    ("spline-periodic", "positive_features"): "float32: the periodic wrap of large positive values (x mod "
    "the period) loses digits",
    ("radius-", "marker"): "training rows at exactly the radius (values rounded to 0.1; 1 to 3 within 1e-9 of "
    "it for each differing row): the distance's last bit decides whether they count",
    ("radius-classifier-distance", "small_ints_multiclass"): "refused at export, by name: an outlier_label "
    "('dog') that is not a class, which scikit-learn takes with a warning (labels outside classes_, zero "
    "probabilities)",
    ("target-encoder-multiclass", "small_classes"): "two classes' probabilities exactly equal (identical "
    "encodings of a small training set); float32 rounding picks between them",
    ("gmm-diag", "small_ints_multiclass"): "float64 score_samples at 1.2e-9: variances near reg_covar on "
    "integer features, log-likelihood terms that cancel",
    ("dictionary-learning-omp-split-sign", "*"): "float32 input: scikit-learn's orthogonal matching pursuit "
    "runs in float32 (7.4e-5); float64 inputs agree in both precisions",
    **{
        (prefix, "*"): "float32 (or, for libsvm's probabilities, float64 at 1e-12 to 8e-11): a kernel "
        "expansion whose terms cancel on integer or large positive features, summed in another order"
        for prefix in ("kernel-ridge", "svc-", "svr-", "nusvr-", "nusvc-")
    },
}


def known(case_id: str, data: str) -> str | None:
    return next((why for (c, d), why in KNOWN.items() if case_id.startswith(c) and d in ("*", data)), None)


def refusals_of_scikit_learn(tc: Any, model: Any, X: Any) -> bool:
    """Whether scikit-learn itself refuses the held-out rows (NaN where training had none, say), in any
    method the conformance test (module ``tc``) calls, kneighbors included."""
    try:
        tc.sklearn_outputs(model, X)
        if hasattr(model[-1] if hasattr(model, "steps") else model, "kneighbors"):
            tc.sklearn_kneighbors(model, X)
    except Exception:
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="only the cases whose id contains this")
    parser.add_argument("--timeout", type=int, default=120, help="seconds a case and data set may take")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import test_conformance as tc
    import zoo

    class BaseTemp:  # (what test_matches_sklearn asks of pytest's tmp_path_factory)
        def __init__(self) -> None:
            self.path = Path(tempfile.mkdtemp())

        def getbasetemp(self) -> Path:
            return self.path

    started, runs, failures = time.time(), 0, []
    for case in zoo.CASES:
        group = next((g for g in GROUPS if case.data in g), None)
        if case.xfail or group is None or args.only not in case.id:
            continue
        for data in group:
            if data == case.data:
                continue
            refitted = dataclasses.replace(case, data=data)
            tc.fitted.cache_clear()
            tc.exported.cache_clear()
            try:
                model, X_test = tc.fitted(refitted)
            except Exception:  # (a model that does not fit these data: not its kind)
                continue
            if refusals_of_scikit_learn(tc, model, X_test):
                continue
            for precision in ("float32", "float64"):
                runs += 1
                try:
                    with time_limit(args.timeout):
                        tc.test_matches_sklearn(refitted, precision, BaseTemp())  # type: ignore[arg-type]
                    continue
                except RunTimeout:
                    message = f"over {args.timeout} s"
                except Exception as e:
                    message = f"{type(e).__name__}: " + " ".join(str(e).split())[:300]
                failures.append({"case": case.id, "data": data, "precision": precision, "message": message})
                print(f"{case.id}@{data} [{precision}]: {message[:160]}", flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "runs": runs, "seconds": round(time.time() - started), "only": args.only}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_data.json").write_text(json.dumps({"meta": meta, "failures": failures}, indent=2) + "\n")
    return 1 if write_markdown(meta, failures) else 0


def write_markdown(meta: dict[str, Any], failures: list[dict[str, Any]]) -> int:
    """results/zoo_data.md from a run's failures, each matched to KNOWN as it stands; the number not known.
    (After KNOWN changes: ``write_markdown(**json.load(open("benchmarks/results/zoo_data.json")))``.)"""
    reasons = [known(f["case"], f["data"]) for f in failures]
    new = [f for f, why in zip(failures, reasons, strict=True) if not why]
    runs = meta["runs"]
    lines = [
        f"# The zoo refitted on other data ({meta['date']})",
        "",
        f"{runs} runs (a case, a data set, a precision) in {meta['seconds']} s; {len(failures)} differ from "
        f"scikit-learn, {len(new)} of them not known.",
        "",
        "| case | data | precision | difference | known |",
        "|---|---|---|---|---|",
    ]
    for f, why in zip(failures, reasons, strict=True):
        message = f["message"].replace("|", "/")[:200]
        lines.append(f"| {f['case']} | {f['data']} | {f['precision']} | {message} | {why or 'NEW'} |")
    (RESULTS / "zoo_data.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:3]))
    return len(new)


if __name__ == "__main__":
    sys.exit(main())
