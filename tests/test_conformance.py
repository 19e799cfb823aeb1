"""Conformance: every zoo model, exported and loaded in a fresh runtime, answers as scikit-learn does.

Labels must be identical. Values must agree within ``tol`` relative to the output's magnitude (per column,
the largest |value| in the batch): a float32 dot product cannot reproduce to 1e-5 of itself a float64
result that cancels to nearly zero, but it does to 1e-5 of the output's scale. float64 mode with float64
inputs is held to 1e-12 the same way; with float32 inputs scikit-learn itself computes in float32, so 1e-5."""

from __future__ import annotations

import functools
import inspect
import operator
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier
from worker_groups import by_case
from zoo import CASES, DATA, Case

import mle_runtime as mle

# Each batch size is a compile and the suite's time is mostly compiles: float32 runs one row (outputs of
# one row keep their shape) and 1,000 (padded to a bucket of 1,024, so a padded row that leaked into
# another's answer shows); float64 precision, there for exactness, runs the 1,000. The trees' strategies
# for the buckets between are checked at 7 rows in tests/test_trees.py.
BATCHES = (1, 1000)
FLOAT64_BATCHES = (1000,)
CASE_ID = operator.attrgetter("id")


@functools.cache
def fitted(case: Case) -> tuple[Any, np.ndarray]:
    data = DATA[case.data]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # SVC(probability=True), deprecated in scikit-learn 1.9 and still converted while it exists
        warnings.filterwarnings("ignore", "The `probability` parameter was deprecated", FutureWarning)
        # IterativeImputer's initial SimpleImputer, of the features without a value that it drops
        warnings.filterwarnings("ignore", "Skipping features without any observed values")
        model = case.make().fit(data["X"], data["y"])
    return model, data["X_test"]


@functools.cache
def exported(case: Case, folder: Path) -> Path:
    model, _ = fitted(case)
    path = folder / f"{case.id}.mle"
    result = mle.export_model(model, path)
    assert result["success"] and path.stat().st_size == result["file_size_bytes"]
    return path


def sklearn_outputs(model: Any, X: np.ndarray) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        # SimpleImputer warns on each transform that it drops features with no observed value.
        warnings.filterwarnings("ignore", "Skipping features without any observed values")
        # OneHotEncoder with drop warns of unknown values it encodes as zeros or as the infrequent column.
        warnings.filterwarnings("ignore", "Found unknown categories")
        out = {}
        if hasattr(model, "predict"):
            out["predict"] = model.predict(X)
        for method in ("predict_proba", "decision_function", "transform", "mahalanobis"):
            if hasattr(model, method):
                try:
                    out[method] = getattr(model, method)(X)
                except NotImplementedError:  # LinearDiscriminantAnalysis(solver="lsqr").transform
                    pass
                except ValueError as e:
                    # ClassifierChain's, where a part has more than two classes; GaussianProcessClassifier's
                    # predict_proba in one-vs-one mode
                    if "could not broadcast" not in str(e) and "does not support predicting probability" not in str(e):
                        raise
        return out


def sklearn_kneighbors(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kneighbors of the model, or of a pipeline's last step on the rows its other steps give it (the
    runtime offers kneighbors wherever a KNeighbors model ends the graph)."""
    if hasattr(model, "steps"):
        return model[-1].kneighbors(model[:-1].transform(X))  # type: ignore[no-any-return]
    return model.kneighbors(X)  # type: ignore[no-any-return]


def sklearn_std(model: Any, X: np.ndarray) -> np.ndarray | None:
    """The predictive standard deviation (predict's return_std) for X's values as float64, where the model
    gives one: float32 arithmetic in scikit-learn's kernels would move it, the square root magnifying it."""
    if "return_std" not in inspect.signature(getattr(model, "predict", lambda X: X)).parameters:
        return None
    return np.asarray(model.predict(np.asarray(X, dtype=np.float64), return_std=True)[1])


def magnitude(values: np.ndarray) -> np.ndarray:
    """Per column, the largest |value| of an output over the whole held-out set."""
    return np.max(np.abs(np.nan_to_num(np.asarray(values, dtype=np.float64))), axis=0)


def assert_close(ours: np.ndarray, ref: np.ndarray, tol: float, what: str, scale: np.ndarray) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != scikit-learn's {ref.shape}"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NaN positions differ")
    ours, ref = np.nan_to_num(ours), np.nan_to_num(ref)
    err = np.abs(ours - ref) / np.maximum(scale, np.finfo(np.float64).tiny)
    assert float(err.max(initial=0.0)) <= tol, f"{what}: max scaled error {err.max():.3g} > {tol:g}"


def rows(X: np.ndarray, n: int) -> np.ndarray:
    return np.resize(X, (n, *X.shape[1:]))


def as_inputs(X: np.ndarray) -> list[tuple[type, np.ndarray]]:
    """The held-out rows as float64 and float32 inputs; documents as they are (exact either way)."""
    if X.dtype == object:
        return [(np.float64, X)]
    return [(dtype, X.astype(dtype)) for dtype in (np.float64, np.float32)]


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("case", by_case(CASES, CASE_ID))
def test_matches_sklearn(case: Case, precision: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if case.xfail:
        pytest.xfail(case.xfail)
    model, X_test = fitted(case)
    runtime = mle.load_model(exported(case, tmp_path_factory.getbasetemp()), precision=precision)
    task = runtime.get_model_info()["metadata"]["task"]
    full = sklearn_outputs(model, rows(X_test, max(BATCHES)))
    scales = {
        k: magnitude(v) for k, v in full.items() if not isinstance(v, list) and np.asarray(v).dtype.kind in "biuf"
    }
    full_std = sklearn_std(model, rows(X_test, max(BATCHES)))
    for n in BATCHES if precision == "float32" else FLOAT64_BATCHES:
        for dtype, X in as_inputs(rows(X_test, n)):
            tol = 1e-12 if precision == "float64" and dtype == np.float64 else 1e-5
            if precision == "float32" and case.float32_tolerance:
                tol = case.float32_tolerance[0]
            elif precision == "float64" and dtype == np.float64 and case.float64_tolerance:
                tol = case.float64_tolerance[0]
            where = f"{case.id} [{precision}, {np.dtype(dtype).name} input, batch {n}]"
            ref = sklearn_outputs(model, X.astype(np.float64) if case.float64_reference else X)
            if case.one_row_squeezed and n == 1:
                ref = {k: np.reshape(v, (1, -1)) for k, v in ref.items()}
            outputs = runtime.run([X])
            if task == "classifier":
                labels = outputs[0]
                np.testing.assert_array_equal(labels, ref["predict"], err_msg=f"{where}: labels")
                assert labels.dtype == ref["predict"].dtype, f"{where}: label dtype {labels.dtype}"
                if isinstance(ref.get("predict_proba"), list):  # several outputs: their probabilities side by side
                    ref["predict_proba"] = np.hstack(ref["predict_proba"])
                    scales["predict_proba"] = magnitude(np.hstack(full["predict_proba"]))
                second = next((m for m in ("predict_proba", "decision_function") if m in ref), None)
                if second is None:  # scikit-learn has only predict (NearestCentroid with the manhattan metric)
                    assert len(outputs) == 1, f"{where}: run() returns {len(outputs)} outputs, predict only expected"
                else:
                    assert_close(outputs[1], ref[second], tol, f"{where}: run()[1] vs {second}", scales[second])
                if hasattr(model, "score_samples"):
                    assert_close(
                        runtime.score_samples(X),
                        model.score_samples(X),
                        tol,
                        f"{where}: score_samples",
                        magnitude(model.score_samples(rows(X_test, max(BATCHES)))),
                    )
                if hasattr(model, "mahalanobis"):  # EllipticEnvelope
                    assert_close(
                        runtime.mahalanobis(X),
                        model.mahalanobis(X),
                        tol,
                        f"{where}: mahalanobis",
                        magnitude(model.mahalanobis(rows(X_test, max(BATCHES)))),
                    )
                if "decision_function" in ref:
                    assert_close(
                        runtime.decision_function(X),
                        ref["decision_function"],
                        tol,
                        f"{where}: decision",
                        scales["decision_function"],
                    )
            elif task == "clusterer":
                np.testing.assert_array_equal(outputs[0], ref["predict"], err_msg=f"{where}: labels")
                assert outputs[0].dtype == ref["predict"].dtype, f"{where}: label dtype {outputs[0].dtype}"
                if "transform" in ref:
                    assert_close(outputs[1], ref["transform"], tol, f"{where}: transform", scales["transform"])
                else:  # scikit-learn has only predict (MeanShift, AffinityPropagation)
                    assert len(outputs) == 1, f"{where}: run() returns {len(outputs)} outputs, predict only"
            elif task == "regressor":
                assert_close(outputs[0], ref["predict"], tol, f"{where}: predictions", scales["predict"])
                assert_close(runtime.predict(X), ref["predict"], tol, f"{where}: predict()", scales["predict"])
                if full_std is not None:  # GaussianProcessRegressor, BayesianRidge, ARDRegression, DummyRegressor
                    mean, std = runtime.predict(X, return_std=True)
                    assert_close(mean, ref["predict"], tol, f"{where}: predict(return_std=True)", scales["predict"])
                    std_tol = case.std_tolerance[0 if precision == "float32" else 1] if case.std_tolerance else tol
                    assert_close(std, sklearn_std(model, X), std_tol, f"{where}: predictive std", magnitude(full_std))
                if "transformed" in runtime._graph.outputs:  # PLS models' x scores
                    assert_close(
                        runtime.transform(X), ref["transform"], tol, f"{where}: transform", scales["transform"]
                    )
            elif task == "neighbors":  # NearestNeighbors: kneighbors, checked below; KNeighborsTransformer's graph
                assert len(outputs) == 2, f"{where}: run() returns {len(outputs)} outputs, kneighbors' two expected"
                if "transform" in ref:
                    graph, expected = runtime.transform(X), ref["transform"]
                    np.testing.assert_array_equal(graph.indptr, expected.indptr, err_msg=f"{where}: graph rows")
                    np.testing.assert_array_equal(graph.indices, expected.indices, err_msg=f"{where}: graph columns")
                    scale = magnitude(full["transform"].data)
                    assert_close(graph.data, expected.data, tol, f"{where}: graph values", scale)
            elif task == "covariance":  # mahalanobis only
                assert_close(
                    outputs[0], model.mahalanobis(X), tol, f"{where}: mahalanobis", magnitude(full["mahalanobis"])
                )
            elif task == "density":  # KernelDensity: score_samples only
                full_scores = model.score_samples(rows(X_test, max(BATCHES)))
                assert_close(outputs[0], model.score_samples(X), tol, f"{where}: score_samples", magnitude(full_scores))
            else:
                assert_close(outputs[0], ref["transform"], tol, f"{where}: transform", scales["transform"])
                if hasattr(model, "score_samples"):  # PCA, FactorAnalysis: the Gaussian log-likelihood
                    scale = magnitude(model.score_samples(rows(X_test, max(BATCHES))))
                    assert_close(runtime.score_samples(X), model.score_samples(X), tol, f"{where}: scores", scale)
            assert len(outputs) == len(runtime.get_model_info()["outputs"])
            if "neighbor_indices" in runtime._graph.outputs:
                distances, indices = runtime.kneighbors(X)
                ref_distances, ref_indices = sklearn_kneighbors(model, X)
                np.testing.assert_array_equal(indices, ref_indices, err_msg=f"{where}: kneighbors' indices")
                assert indices.dtype == ref_indices.dtype, f"{where}: kneighbors' index dtype {indices.dtype}"
                full_distances = sklearn_kneighbors(model, rows(X_test, max(BATCHES)))[0]
                what = f"{where}: kneighbors' distances"
                assert_close(distances, ref_distances, tol, what, magnitude(full_distances))


def test_every_supported_class_is_in_the_zoo() -> None:
    from mle_runtime.converters._registry import supported_classes

    covered: set[type] = set()
    for case in CASES:
        model = case.make()
        covered.add(type(model))
        # every estimator nested in it: pipeline steps, column transformer parts, meta-estimators' parts
        covered.update(type(v) for v in model.get_params(deep=True).values() if hasattr(v, "fit"))
    missing = sorted(c.__name__ for c in supported_classes() if c not in covered)
    assert not missing, f"supported but not tested: {missing}"


@pytest.mark.parametrize(("multi_class", "data"), [("multinomial", "binary"), ("ovr", "multiclass")])
def test_logistic_heads_of_scikit_learn_before_1_8(multi_class: str, data: str, tmp_path: Path) -> None:
    """scikit-learn < 1.8 kept ``multi_class``; its predict_proba was softmax([-d, d]) for a binary
    multinomial model and OvR-normalized sigmoids for "ovr". The installed version has neither, so the
    attribute is set by hand and the probabilities are checked against those formulas."""
    from scipy.special import expit, softmax
    from sklearn.linear_model import LogisticRegression

    d = DATA[data]()
    model = LogisticRegression(max_iter=500).fit(d["X"], d["y"])
    model.multi_class = multi_class
    mle.export_model(model, tmp_path / "m.mle")
    proba = mle.load_model(tmp_path / "m.mle", precision="float64").predict_proba(d["X_test"])
    scores = model.decision_function(d["X_test"])
    if multi_class == "multinomial":
        want = softmax(np.c_[-scores, scores], axis=1)
    else:
        p = expit(scores)
        want = p / p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, want, rtol=1e-12, atol=1e-14)


def test_a_sparse_coder_converts_without_fit(tmp_path: Path) -> None:
    from sklearn.decomposition import SparseCoder

    rng = np.random.default_rng(5)
    coder = SparseCoder(rng.normal(size=(9, 6)), transform_n_nonzero_coefs=3)  # (stateless: no fit needed)
    mle.export_model(coder, tmp_path / "coder.mle")
    X = rng.normal(size=(40, 6))
    runtime = mle.load_model(tmp_path / "coder.mle", precision="float64")
    np.testing.assert_allclose(runtime.transform(X), coder.transform(X), rtol=0, atol=1e-12)


def test_isotonic_takes_one_dimensional_input(tmp_path: Path) -> None:
    from sklearn.isotonic import IsotonicRegression

    x = np.random.default_rng(0).uniform(0, 1, 200)
    model = IsotonicRegression().fit(x, np.sqrt(x) + 0.05 * np.sin(30 * x))
    mle.export_model(model, tmp_path / "iso.mle")
    runtime = mle.load_model(tmp_path / "iso.mle", precision="float64")
    t = np.array([-0.2, 0.0, 0.31, 0.5, 0.999, 1.5])
    np.testing.assert_allclose(runtime.predict(t), model.predict(t), rtol=1e-12)
    np.testing.assert_array_equal(runtime.predict(t), runtime.predict(t.reshape(-1, 1)))


def test_random_trees_embedding_sparse_transform_and_unreached_leaves(tmp_path: Path) -> None:
    """Its (sparse) transform as scikit-learn's, every tree's leaf column a one, with missing values routed
    as its trees route them (NaN accepted, and none left for what follows); a leaf its encoder never saw
    (scikit-learn would raise at transform) is refused at export."""
    from sklearn.ensemble import RandomTreesEmbedding
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    d = DATA["nan_binary"]()
    X, y = d["X"], d["y"]
    model = RandomTreesEmbedding(12, max_depth=5, random_state=0).fit(X[:300])
    classifier = make_pipeline(RandomTreesEmbedding(12, max_depth=5, random_state=0), LogisticRegression()).fit(X, y)
    mle.export_model(model, tmp_path / "embedding.mle")
    mle.export_model(classifier, tmp_path / "classifier.mle")
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "embedding.mle", precision=precision)
        np.testing.assert_array_equal(runtime.transform(X), model.transform(X).toarray())
        labels = mle.load_model(tmp_path / "classifier.mle", precision=precision).predict(d["X_test"])
        np.testing.assert_array_equal(labels, classifier.predict(d["X_test"]))
    model.one_hot_encoder_.categories_[3] = model.one_hot_encoder_.categories_[3][1:]
    with pytest.raises(TypeError, match="leaves no training row reached"):
        mle.export_model(model, tmp_path / "unreached.mle")


def test_isotonic_regression_raises_outside_its_range_as_scikit_learn(tmp_path: Path) -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 200)
    model = IsotonicRegression(out_of_bounds="raise").fit(x, x**3 + rng.normal(size=200))
    mle.export_model(model, tmp_path / "iso.mle")
    inside = np.concatenate([np.linspace(x.min(), x.max(), 50), model.X_thresholds_])
    for precision in ("float32", "float64"):
        runtime = mle.load_model(tmp_path / "iso.mle", precision=precision)
        tol = 1e-12 if precision == "float64" else 1e-5
        np.testing.assert_allclose(runtime.predict(inside), model.predict(inside), rtol=tol, atol=tol)
        for beyond in (x.min() - 0.5, x.max() + 0.5):
            rows = np.array([0.0, beyond, 1.0])
            with pytest.raises(ValueError, match="interpolation range"):
                model.predict(rows)
            with pytest.raises(ValueError, match=r"outside the interpolation range .* \(rows \[1\]\)"):
                runtime.predict(rows)


def test_a_search_without_a_refitted_best_estimator_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    data = DATA["binary"]()
    search = GridSearchCV(LogisticRegression(), {"C": [0.5, 2.0]}, refit=False, cv=3).fit(data["X"], data["y"])
    with pytest.raises(TypeError, match="GridSearchCV was fitted with refit=False"):
        mle.export_model(search, tmp_path / "search.mle")


def test_box_cox_refuses_what_is_not_strictly_positive(tmp_path: Path) -> None:
    from sklearn.preprocessing import PowerTransformer

    data = DATA["positive_features"]()
    model = PowerTransformer(method="box-cox").fit(data["X"])
    mle.export_model(model, tmp_path / "box-cox.mle")
    bad = data["X_test"][:6].copy()
    bad[2, 1], bad[4, 0], bad[5, 3] = 0.0, -1.0, np.nan  # NaN passes, as scikit-learn lets it
    with pytest.raises(ValueError, match="strictly positive"):
        model.transform(bad)
    with pytest.raises(ValueError, match=r"strictly positive data \(rows \[2, 4\]\)"):
        mle.load_model(tmp_path / "box-cox.mle").run([bad])


def test_missing_indicator_refuses_missing_values_where_training_had_none(tmp_path: Path) -> None:
    from sklearn.impute import MissingIndicator

    data = DATA["nan_empty_column"]()
    X = data["X"].copy()
    X[:, 5] = np.nan_to_num(X[:, 5])  # column 5 never missing in training
    model = MissingIndicator().fit(X)
    mle.export_model(model, tmp_path / "indicator.mle")
    runtime = mle.load_model(tmp_path / "indicator.mle")
    test = np.nan_to_num(data["X_test"][:8])
    test[[1, 6], 5] = np.nan
    with pytest.raises(ValueError, match="have missing values in transform"):
        model.transform(test)
    with pytest.raises(ValueError, match=r"missing values in transform \(rows \[1, 6\]\)"):
        runtime.run([test])
    np.testing.assert_array_equal(runtime.run([test[[0, 2]]])[0], model.transform(test[[0, 2]]))


def test_neighbours_of_a_training_set_larger_than_one_block(tmp_path: Path) -> None:
    """5,000 training rows (three blocks of the search), with duplicated rows, queried by more rows
    than one chunk of the search: the same neighbours, labels and distance-weighted probabilities as
    scikit-learn's brute force. A query equal to two training rows is at distance 0 from them, where the
    neighbours alone vote; scikit-learn's distances from its BLAS's dot products may be ~3e-8 instead
    (on the AMD machine; 0 on the Intel one), which weights them 1 / 3e-8 and moves its probabilities by
    ~2e-8: those rows are held to the vote of the two, and to scikit-learn's within 1e-7."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    from mle_runtime.ops.neighbors import BLOCK, QUERY_CHUNK

    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 6))
    X[4000:4100] = X[:100]  # exact duplicates, across blocks, with the same targets
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
    assert len(X) > 2 * BLOCK
    X_test = np.vstack([rng.normal(size=(QUERY_CHUNK + 300, 6)), X[:20]])  # rows at distance 0 from two
    for model, method in (
        (KNeighborsClassifier(9, weights="distance", algorithm="brute").fit(X, y), "predict_proba"),
        (KNeighborsRegressor(4, algorithm="brute").fit(X, X[:, 2] * y), "predict"),
    ):
        path = tmp_path / f"{method}.mle"
        mle.export_model(model, path)
        runtime = mle.load_model(path, precision="float64")
        want, ours = getattr(model, method)(X_test), getattr(runtime, method)(X_test)
        # (a mean of neighbours nearly as far as each other may add them in another order: not exact)
        if method == "predict_proba":
            assert_close(ours[:-20], want[:-20], 1e-12, method, magnitude(want))
            np.testing.assert_array_equal(ours[-20:], np.eye(2)[y[:20]])  # (y[4000:4020] is y[:20])
            assert_close(ours[-20:], want[-20:], 1e-7, method, magnitude(want))
            np.testing.assert_array_equal(runtime.predict(X_test), model.predict(X_test))
        else:
            assert_close(ours, want, 1e-12, method, magnitude(want))


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_neighbours_among_many_equal_distances(metric: str, tmp_path: Path) -> None:
    """Half the training rows on an integer grid (some 20 at each point), half scattered around it: the
    k-th neighbour is often one of many equally distant rows, across blocks and search groups. Where it is not, the
    votes equal scikit-learn's; where it is, scikit-learn's brute force keeps whichever its heap keeps
    (its documentation leaves ties to the ordering of the data), and the runtime keeps the lowest
    training rows (lexicographic on distance then row), which this test checks directly."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(4)
    X = rng.integers(0, 5, size=(5000, 3)).astype(np.float64)
    X[::2] += rng.normal(scale=0.3, size=X[::2].shape)
    y = rng.integers(0, 4, size=5000)
    X_test = rng.integers(-1, 6, size=(600, 3)).astype(np.float64)
    k = 20
    model = KNeighborsClassifier(k, metric=metric, algorithm="brute").fit(X, y)
    mle.export_model(model, tmp_path / "m.mle")
    distances = np.abs(X_test[:, None, :] - X[None, :, :])
    distances = np.sqrt((distances**2).sum(-1)) if metric == "euclidean" else distances.sum(-1)
    order = np.argsort(distances, axis=1, kind="stable")  # distance, then training row
    lowest_rows = np.stack([np.bincount(y[row[:k]], minlength=4) / k for row in order])
    ranked = np.take_along_axis(distances, order, axis=1)
    untied = ranked[:, k - 1] < ranked[:, k]
    assert 50 < untied.sum() < len(X_test) - 50  # both kinds of row are exercised
    for precision in ("float64", "float32"):
        proba = mle.load_model(tmp_path / "m.mle", precision=precision).predict_proba(X_test)
        tol = 1e-12 if precision == "float64" else 1e-6
        np.testing.assert_allclose(proba[untied], model.predict_proba(X_test[untied]), atol=tol)
        np.testing.assert_allclose(proba, lowest_rows, atol=tol)


def test_rows_without_neighbours_in_the_radius(tmp_path: Path) -> None:
    """Where scikit-learn raises (no neighbour and no outlier_label), the runtime raises ValueError
    naming the rows; where it predicts NaN (a regressor), so does the runtime."""
    from sklearn.neighbors import RadiusNeighborsClassifier, RadiusNeighborsRegressor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3))
    far = np.vstack([X[:5] + 0.01, [[50.0, 50.0, 50.0]]])
    classifier = RadiusNeighborsClassifier(1.0).fit(X, X[:, 0] > 0)
    mle.export_model(classifier, tmp_path / "c.mle")
    runtime = mle.load_model(tmp_path / "c.mle", precision="float64")
    np.testing.assert_array_equal(runtime.predict(far[:5]), classifier.predict(far[:5]))
    with pytest.raises(ValueError, match="No neighbors found"):
        classifier.predict(far)
    with pytest.raises(ValueError, match=r"No neighbors found .*\(rows \[5\]\)"):
        runtime.predict(far)
    regressor = RadiusNeighborsRegressor(1.0).fit(X, X[:, 1])
    mle.export_model(regressor, tmp_path / "r.mle")
    with pytest.warns(UserWarning, match="no neighbors"):
        want = regressor.predict(far)
    got = mle.load_model(tmp_path / "r.mle", precision="float64").predict(far)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(got[5])


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_multi_output_classifier(precision: str, tmp_path: Path) -> None:
    """Labels (rows, outputs) in each output's own class values, predict_proba one array per output."""
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.naive_bayes import GaussianNB

    d = DATA["multiclass"]()
    y = np.stack([np.array(["lo", "hi"])[(d["y"] > 1).astype(int)], np.array(["a", "b", "c", "d"])[d["y"]]], axis=1)
    model = MultiOutputClassifier(GaussianNB()).fit(d["X"], y)
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision=precision)
    X = d["X_test"]
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
    tol = 1e-12 if precision == "float64" else 1e-5
    for ours, ref in zip(runtime.predict_proba(X), model.predict_proba(X), strict=True):
        assert_close(ours, ref, tol, "predict_proba", magnitude(ref))


@pytest.mark.parametrize(
    "meta",
    [
        "CalibratedClassifierCV",
        "OneVsRestClassifier",
        "OneVsOneClassifier",
        "OutputCodeClassifier",
        "MultiOutputRegressor",
        "TransformedTargetRegressor",
        "FixedThresholdClassifier",
    ],
)
def test_meta_estimators_take_nan_where_all_their_parts_do(meta: str, tmp_path: Path) -> None:
    """These hand the input unchecked to their parts (their tags say no NaN): scikit-learn answers rows with
    NaN when every part takes NaN (forests, histogram boosting), and raises when one does not (logistic
    regression); the runtime answers as it does, and refuses where it raises."""
    from sklearn import calibration, compose, ensemble, linear_model, model_selection, multiclass, multioutput

    d = DATA["nan_binary"]()
    X, y, X_test = d["X"], d["y"] + (d["X"][:, 1] > 1), d["X_test"]  # (three classes)
    forest, boosting = ensemble.RandomForestClassifier(10, random_state=0), ensemble.HistGradientBoostingRegressor()
    wrap = {
        "CalibratedClassifierCV": lambda part: calibration.CalibratedClassifierCV(part, cv=3),
        "OneVsRestClassifier": multiclass.OneVsRestClassifier,
        "OneVsOneClassifier": multiclass.OneVsOneClassifier,
        "OutputCodeClassifier": lambda part: multiclass.OutputCodeClassifier(part, random_state=0),
        "MultiOutputRegressor": multioutput.MultiOutputRegressor,
        "TransformedTargetRegressor": lambda part: compose.TransformedTargetRegressor(
            part, func=np.log1p, inverse_func=np.expm1
        ),
        "FixedThresholdClassifier": lambda part: model_selection.FixedThresholdClassifier(part, threshold=0.3),
    }[meta]
    regressor = meta in ("MultiOutputRegressor", "TransformedTargetRegressor")
    target = {
        "MultiOutputRegressor": np.stack([X[:, 0] ** 2, y], axis=1),
        "TransformedTargetRegressor": np.abs(X[:, 0]),
        "FixedThresholdClassifier": d["y"],  # (binary)
    }.get(meta, y)
    model = wrap(boosting if regressor else forest).fit(X, np.nan_to_num(target))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    assert np.isnan(X_test).any()
    if regressor:
        assert_close(runtime.predict(X_test), model.predict(X_test), 1e-12, meta, magnitude(model.predict(X_test)))
    else:
        np.testing.assert_array_equal(runtime.predict(X_test), model.predict(X_test))
    refusing = wrap(linear_model.Ridge() if regressor else linear_model.LogisticRegression())
    refusing.fit(np.nan_to_num(X), np.nan_to_num(target))
    with pytest.raises(ValueError, match="NaN"):
        refusing.predict(X_test)
    mle.export_model(refusing, tmp_path / "refusing.mle")
    with pytest.raises(ValueError, match="contains NaN"):
        mle.load_model(tmp_path / "refusing.mle").predict(X_test)


# scikit-learn takes infinities into these, and the runtime refuses them (case id prefix -> why)
INFINITY_REFUSED = {
    "kernel-density": "scikit-learn's tree-based sum answers a row at infinity with an approximate -inf or NaN",
    "nearest-neighbors": "distances to a row at infinity are inf or NaN, and its neighbours an artifact of the "
    "tree search's order",
    "scaled-nearest-neighbors": "as nearest-neighbors",
}
NUMERIC_CASES = [c for c in CASES if not c.xfail and DATA[c.data]()["X_test"].dtype.kind == "f"]


@pytest.mark.parametrize("case", by_case(NUMERIC_CASES, CASE_ID))
def test_infinities_are_taken_where_scikit_learn_takes_them(case: Case, tmp_path_factory) -> None:
    """+inf and -inf in two rows: refused where scikit-learn raises (most estimators), answered as
    scikit-learn answers where it takes them (histogram boosting, isolation forests, dummies, an identity
    FunctionTransformer and the pipelines that hand them the column), in float64 precision."""
    model, X_test = fitted(case)
    X = rows(X_test, 1000).astype(np.float64)  # (the batch test_matches_sklearn compiled)
    X[1, 0], X[3, -1] = np.inf, -np.inf
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (scikit-learn's finiteness check sums inf - inf)
            ref = sklearn_outputs(model, X)
    except ValueError:
        ref = None
    runtime = mle.load_model(exported(case, tmp_path_factory.getbasetemp()), precision="float64")
    if ref is None or case.id.startswith(tuple(INFINITY_REFUSED)):
        with pytest.raises(ValueError, match="infinity"):
            runtime.run([X])
        return
    outputs = runtime.run([X])
    task = runtime.get_model_info()["metadata"]["task"]
    tol = case.float64_tolerance[0] if case.float64_tolerance else 1e-12
    if task in ("classifier", "clusterer"):
        np.testing.assert_array_equal(outputs[0], ref["predict"], err_msg=f"{case.id}: labels")
    second = next((m for m in ("predict_proba", "decision_function", "transform") if m in ref), "predict")
    expected = np.hstack(ref[second]) if isinstance(ref[second], list) else ref[second]
    ours = outputs[0] if task not in ("classifier", "clusterer") else outputs[1]
    assert_close(ours, expected, tol, f"{case.id}: {second}", magnitude(expected))
    if hasattr(model, "score_samples"):
        scores = model.score_samples(X)
        assert_close(runtime.score_samples(X), scores, tol, f"{case.id}: score_samples", magnitude(scores))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DummyClassifier(),
        lambda: DummyClassifier(strategy="constant", constant="ccc"),
        lambda: GaussianProcessClassifier(random_state=0),
        lambda: GaussianProcessClassifier(multi_class="one_vs_one", random_state=0),
    ],
    ids=["dummy", "dummy-constant", "gaussian-process", "gaussian-process-one-vs-one"],
)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_string_labels_in_the_dtype_of_scikit_learns_predict(make, n_classes: int, tmp_path: Path) -> None:
    """String classes are an object array; most predicts index it (object labels), DummyClassifier and
    GaussianProcessClassifier build their labels with numpy ("<U" strings), one-vs-one's excepted. A
    DummyClassifier's "<U" is as wide as the class it answers; the runtime's, as the widest class (its
    classes are one array, which must keep every class whole)."""
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = np.array(["ccc", "a", "bb"], dtype=object)[np.arange(60) % n_classes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make().fit(X, y)
    mle.export_model(model, tmp_path / "m.mle")
    labels = mle.load_model(tmp_path / "m.mle").predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    expected = model.predict(X).dtype
    if isinstance(model, DummyClassifier):
        assert labels.dtype.kind == expected.kind == "U"
    else:
        assert labels.dtype == expected


@pytest.mark.parametrize("outputs", [1, 2])
def test_dummy_labels_of_an_object_array_of_ints(outputs: int, tmp_path: Path) -> None:
    """A DummyClassifier fitted on an object array of Python ints answers int64 (numpy's dtype for them),
    beside strings the "<U" of both, as scikit-learn's predict does."""
    X = np.random.default_rng(0).normal(size=(30, 2))
    ints = np.array([7, 3, 3] * 10, dtype=object)
    y = ints if outputs == 1 else np.stack([ints, np.array(["a", "bb", "a"] * 10, dtype=object)], axis=1)
    model = DummyClassifier().fit(X, y)
    mle.export_model(model, tmp_path / "m.mle")
    labels = mle.load_model(tmp_path / "m.mle").predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    assert labels.dtype == model.predict(X).dtype


@pytest.mark.parametrize("chain", [False, True])
def test_multilabel_predict_proba_is_one_array(chain: bool, tmp_path: Path) -> None:
    """A multilabel classifier's predict_proba: each label's positive probability, (rows, labels), one
    array as scikit-learn returns; its labels in scikit-learn's dtype (a chain's are floats)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.multioutput import ClassifierChain

    d = DATA["multilabel"]()
    model = (ClassifierChain if chain else OneVsRestClassifier)(LogisticRegression()).fit(d["X"], d["y"])
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    X = d["X_test"]
    labels, want = runtime.predict(X), model.predict(X)
    np.testing.assert_array_equal(labels, want)
    assert labels.dtype == want.dtype
    proba = runtime.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (len(X), 3)
    assert_close(proba, model.predict_proba(X), 1e-12, "predict_proba", magnitude(model.predict_proba(X)))


def test_spline_extrapolation_error_refuses_rows_beyond_the_knots(tmp_path: Path) -> None:
    """SplineTransformer(extrapolation="error"): rows inside the knots match scikit-learn; a row beyond
    them raises ValueError naming it, where scikit-learn raises."""
    from sklearn.preprocessing import SplineTransformer

    d = DATA["regression"]()
    model = SplineTransformer(5, extrapolation="error").fit(d["X"])
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle", precision="float64")
    inside = np.clip(d["X_test"], d["X"].min(axis=0), d["X"].max(axis=0))
    assert_close(runtime.transform(inside), model.transform(inside), 1e-12, "transform", 1.0)
    beyond = inside.copy()
    beyond[3, 2] = d["X"][:, 2].max() + 1e-9
    with pytest.raises(ValueError, match="beyond the limits of the knots"):
        model.transform(beyond)
    with pytest.raises(ValueError, match=r"beyond the limits of the knots \(rows \[3\]\)"):
        runtime.transform(beyond)


def test_column_transformer_by_name_on_a_dataframe(tmp_path: Path) -> None:
    """Columns chosen by name (and by a callable selector), a DataFrame in; NaN accepted in the encoded
    column and refused in a scaled one, as scikit-learn accepts and refuses it."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(6)
    frame = pd.DataFrame(
        {"size": rng.integers(0, 3, 400).astype(float), "x1": rng.normal(size=400), "x2": rng.normal(size=400)}
    )
    y = (frame["size"] + frame["x1"] > 1).to_numpy()
    model = make_pipeline(
        ColumnTransformer(
            [
                ("size", OneHotEncoder(handle_unknown="ignore"), ["size"]),
                ("num", StandardScaler(), make_column_selector(pattern="^x")),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, y)
    mle.export_model(model, tmp_path / "ct.mle")
    runtime = mle.load_model(tmp_path / "ct.mle", precision="float64")
    test = frame.copy()
    test.loc[:5, "size"] = [np.nan, 7.0, 1.0, 2.0, 0.0, np.nan]
    np.testing.assert_array_equal(runtime.predict(test), model.predict(test))
    want = model.predict_proba(test)
    assert_close(runtime.predict_proba(test), want, 1e-12, "predict_proba", magnitude(want))
    test.loc[0, "x1"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(test)
    with pytest.raises(ValueError, match="NaN"):
        runtime.predict(test)


def test_unknown_categories_raise_where_scikit_learn_raises(tmp_path: Path) -> None:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    X = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 1.0]])
    for encoder in (OneHotEncoder(sparse_output=False), OrdinalEncoder()):
        encoder.fit(X)
        path = tmp_path / f"{type(encoder).__name__}.mle"
        mle.export_model(encoder, path)
        runtime = mle.load_model(path, precision="float64")
        np.testing.assert_array_equal(runtime.transform(X[::-1]), encoder.transform(X[::-1]))
        unseen = np.array([[1.0, 1.0], [5.0, 2.0]])
        with pytest.raises(ValueError, match="unknown categor"):
            encoder.transform(unseen)
        with pytest.raises(ValueError, match=r"unknown categories .*\(rows \[1\]\)"):
            runtime.transform(unseen)


def test_functions_that_are_not_named_numpy_ufuncs_are_refused(tmp_path: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    X = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(TypeError, match="arbitrary code"):
        mle.export_model(FunctionTransformer(lambda a: a * 2).fit(X), tmp_path / "f.mle")


def test_categorical_nb_refuses_values_that_are_no_category(tmp_path: Path) -> None:
    from sklearn.naive_bayes import CategoricalNB

    X = np.array([[0, 1], [1, 0], [2, 1], [1, 1]], dtype=float)
    model = CategoricalNB().fit(X, [0, 1, 0, 1])
    mle.export_model(model, tmp_path / "c.mle")
    runtime = mle.load_model(tmp_path / "c.mle", precision="float64")
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
    for bad in ([[3.0, 0.0]], [[-1.0, 0.0]], [[0.5, 1.0]]):
        with pytest.raises(ValueError, match=r"not one of its feature's categories .*\(rows \[1\]\)"):
            runtime.predict(np.vstack([X[:1], bad]))


@pytest.mark.parametrize("case", by_case(CASES, CASE_ID))
def test_as_jax_composes_with_jit_and_vmap(case: Case, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every supported model's pure function: jit and vmap over a leading axis of batches give what the
    runtime computes (its graph outputs, before labels are decoded on the host). One compile of the
    vmapped function: the runtime's own program is a jit of the same function (the suite's time is mostly
    compiles)."""
    if case.xfail:
        pytest.xfail(case.xfail)
    import jax

    _, X_test = fitted(case)
    runtime = mle.load_model(exported(case, tmp_path_factory.getbasetemp()))
    fn, params = runtime.as_jax()
    # Three different batches of test_matches_sklearn's 1,000 rows, whose program (padded to 1,024) the
    # runtime finds in the executable cache. (Documents: one layout of their terms for all three.)
    n = max(BATCHES)
    prepared = runtime.encode_inputs([rows(X_test, n + 2)])[0]
    batches = [prepared[k : k + n] for k in range(3)]
    many = jax.jit(jax.vmap(fn, in_axes=(None, 0)))(params, np.stack(batches))
    outputs = runtime._graph.outputs
    for k, batch in enumerate(batches):
        with runtime._scope():
            expected = runtime._dispatch([batch], runtime._bucket(len(batch)), outputs)
        for name, value in zip(outputs, expected, strict=True):
            alone = np.asarray(value)[: len(batch)]
            # batched dots may sum in another order: float32 rounding, relative to the output's size
            tol = case.float32_tolerance[0] if case.float32_tolerance else 1e-5
            if name == "std" and case.std_tolerance:  # (a difference that cancels: the order moves it most)
                tol = case.std_tolerance[0]
            scale = tol * max(1.0, float(np.max(np.abs(alone), initial=0.0))) if alone.dtype.kind == "f" else 0
            np.testing.assert_allclose(
                np.asarray(many[name][k]), alone, rtol=tol, atol=scale, err_msg=f"{name}, batch {k}"
            )


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev", "minkowski"])
@pytest.mark.parametrize("kernel", ["gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"])
def test_kernel_density_every_kernel_and_metric(kernel: str, metric: str, tmp_path: Path) -> None:
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(3)
    X, weights = rng.normal(size=(300, 3)), rng.uniform(0.5, 2.0, 300)
    params = {"p": 3.0} if metric == "minkowski" else None
    # A ball tree searched depth first: scikit-learn's default (a k-d tree searched breadth first) stops short by
    # up to ~1e-6 for a row far from every training row, tolerances of 0 notwithstanding. Sample weights with the
    # unbounded kernels only: with weights, its trees give some rows that no training row reaches ~-39, not -inf.
    model = KernelDensity(
        kernel=kernel, bandwidth=1.5, metric=metric, metric_params=params, algorithm="ball_tree", breadth_first=False
    )
    model.fit(X, sample_weight=weights if kernel in ("gaussian", "exponential") else None)
    mle.export_model(model, tmp_path / "kde.mle")
    queries = np.vstack([rng.normal(size=(40, 3)), X[:5], [[9.0, 9.0, 9.0]]])  # training rows; one beyond any reach
    expected = model.score_samples(queries)
    for precision, tol in (("float64", 1e-12), ("float32", 1e-5)):
        ours = mle.load_model(tmp_path / "kde.mle", precision=precision).score_samples(queries)
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(expected))  # bounded kernels: -inf beyond h
        finite = np.isfinite(expected)
        assert finite.sum() >= 40  # (most queries have training rows within reach)
        scale = np.abs(expected[finite]).max()
        np.testing.assert_allclose(ours[finite], expected[finite], rtol=0, atol=tol * scale, err_msg=precision)


def test_kernel_density_with_a_metric_the_runtime_lacks_is_refused(tmp_path: Path) -> None:
    from sklearn.neighbors import KernelDensity

    model = KernelDensity(metric="haversine").fit(np.random.default_rng(0).uniform(-1, 1, size=(50, 2)))
    with pytest.raises(TypeError, match="KernelDensity\\(metric='haversine'\\): supported metrics are"):
        mle.export_model(model, tmp_path / "kde.mle")


@pytest.mark.parametrize("dtype", [None, np.float32], ids=["float64-bins", "float32-bins"])
@pytest.mark.parametrize("strategy", ["quantile", "uniform", "kmeans"])
def test_kbins_on_their_edges_in_both_precisions(strategy: str, dtype: Any, tmp_path: Path) -> None:
    """KBinsDiscretizer compares a value with float64 edges (after rounding it to float32 where ``dtype``
    says so). 0.1-rounded data puts many edges on values float32 cannot hold: inputs on the edges, one
    float64 ulp and one float32 step either side, as float64 and float32 arrays, land in scikit-learn's bins
    in both precisions, alone and inside a ColumnTransformer (a column selection before the bins)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import KBinsDiscretizer

    rng = np.random.default_rng(2)
    X = np.round(rng.normal(size=(1500, 3)), 1)
    bins = KBinsDiscretizer(6, encode="ordinal", strategy=strategy, dtype=dtype, quantile_method="linear")
    alone = bins.fit(X)
    within = ColumnTransformer(
        [
            (
                "bins",
                KBinsDiscretizer(6, encode="onehot-dense", strategy=strategy, dtype=dtype, quantile_method="linear"),
                [2, 0],
            )
        ]
    )
    within.fit(X)
    edges = np.concatenate([e[1:-1] for e in alone.bin_edges_])
    float32_steps = [np.nextafter(edges.astype(np.float32), np.float32(s)).astype(float) for s in (-np.inf, np.inf)]
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), *float32_steps])
    near = near[(near == 0) | (np.abs(near) >= np.finfo(np.float32).tiny)]  # (XLA reads subnormals as 0: README)
    assert strategy != "quantile" or (edges == 0).any(), "no edge at 0: its neighbours would not be tested"
    queries = np.concatenate([np.round(rng.normal(size=(300, 3)), 1), np.tile(near[:, None], (1, 3))])
    for model, name in ((alone, "alone"), (within, "within")):
        mle.export_model(model, tmp_path / f"{name}.mle")
        for precision in ("float32", "float64"):
            runtime = mle.load_model(tmp_path / f"{name}.mle", precision=precision)
            for input_dtype in (np.float64, np.float32):
                rows = queries.astype(input_dtype)
                np.testing.assert_array_equal(
                    runtime.transform(rows), model.transform(rows), err_msg=f"{name}, {precision}, {input_dtype}"
                )
