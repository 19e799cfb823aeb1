"""Inputs scikit-learn takes besides a float array: scipy.sparse matrices, DataFrames whose columns mix
bools, ints and floats or hold pandas' nullable and Arrow types, arrays of boxed numbers; inputs by name;
PyTorch tensors; and predict_log_proba, which a caller swapping the runtime in for the model asks for. Each
answer is compared with the framework's own on the same input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.ensemble import BaggingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mle_runtime as mle
from mle_runtime import inputs
from mle_runtime.runtime import MLERuntime


def _exported(model: Any, path: Path) -> MLERuntime:
    mle.export_model(model, path)
    return mle.load_model(path, precision="float64")


@pytest.fixture(scope="module")
def sparse_data() -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(0)
    X = sp.random(600, 40, density=0.1, format="csr", random_state=rng, dtype=np.float64)
    y = (np.asarray(X[:, :5].sum(axis=1)).ravel() > np.median(np.asarray(X[:, :5].sum(axis=1)))).astype(int)
    return X, y


@pytest.mark.parametrize("make", [LogisticRegression, lambda: RandomForestClassifier(20, random_state=0)])
def test_sparse_inputs_answer_as_the_model_does(make: Any, sparse_data: Any, tmp_path: Path) -> None:
    X, y = sparse_data
    model = make().fit(X, y)
    runtime = _exported(model, tmp_path / "m.mle")
    want = model.predict_proba(X)
    for kind in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array):
        np.testing.assert_allclose(runtime.predict_proba(kind(X)), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(runtime.predict(X), model.predict(X))
    np.testing.assert_allclose(runtime.run(X)[1], want, rtol=1e-12, atol=1e-12)  # (one input, unlisted)


def test_a_large_sparse_batch_goes_dense_a_block_at_a_time(
    sparse_data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = sparse_data
    model = LogisticRegression().fit(X, y)
    runtime = _exported(model, tmp_path / "m.mle")
    monkeypatch.setattr(inputs, "SPARSE_BLOCK_BYTES", 100 * 40 * 8)  # blocks of 100 rows
    prepared: list[int] = []
    prepare = MLERuntime._prepare

    def counting(self: MLERuntime, given: Any) -> list[np.ndarray]:
        arrays = prepare(self, given)
        prepared.append(len(arrays[0]))
        return arrays

    monkeypatch.setattr(MLERuntime, "_prepare", counting)
    np.testing.assert_allclose(runtime.predict_proba(X), model.predict_proba(X), rtol=1e-12, atol=1e-12)
    assert prepared == [100] * 6


def test_a_sparse_input_of_the_wrong_width_is_refused(sparse_data: Any, tmp_path: Path) -> None:
    X, y = sparse_data
    runtime = _exported(LogisticRegression().fit(X, y), tmp_path / "m.mle")
    with pytest.raises(ValueError, match="expected 40 features, got 39"):
        runtime.predict(X[:, :39])


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(size=n),
            "member": rng.random(n) > 0.5,
            "visits": rng.integers(0, 20, n),
            "score": rng.normal(size=n).astype(np.float32),
        }
    )


def _target(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["amount"] + frame["member"] + frame["visits"] / 10) > 1).to_numpy().astype(int)


@pytest.mark.parametrize("small_frame_cells", [inputs.SMALL_FRAME_CELLS, 0])  # (0: the large frames' path)
@pytest.mark.parametrize("make", [LogisticRegression, lambda: HistGradientBoostingClassifier(max_iter=20)])
def test_dataframes_mixing_bools_ints_and_floats(
    make: Any, small_frame_cells: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "SMALL_FRAME_CELLS", small_frame_cells)
    train = _mixed_frame(500, 0)
    model = make().fit(train, _target(train))
    runtime = _exported(model, tmp_path / "m.mle")
    test = _mixed_frame(200, 1)
    nullable = test.astype({"amount": "Float64", "member": "boolean", "visits": "Int64", "score": "Float32"})
    arrow = test.astype({"amount": "float64[pyarrow]", "member": "bool[pyarrow]", "visits": "int64[pyarrow]"})
    boxed = test.astype({"amount": object, "visits": object})
    for frame in (test, nullable, arrow, boxed):
        np.testing.assert_array_equal(runtime.predict(frame), model.predict(frame))
        np.testing.assert_allclose(runtime.predict_proba(frame), model.predict_proba(frame), rtol=1e-9, atol=1e-12)


def test_a_missing_value_in_a_nullable_column_is_nan(tmp_path: Path) -> None:
    """pandas' NA reads as NaN: a model that handles missing values answers as scikit-learn does, one
    that does not refuses it, as scikit-learn does."""
    train = _mixed_frame(500, 0)
    test = _mixed_frame(50, 1).astype({"amount": "Float64", "member": "boolean"})
    test.loc[[3, 7], "amount"] = pd.NA
    test.loc[5, "member"] = pd.NA
    boosted = HistGradientBoostingClassifier(max_iter=20).fit(train, _target(train))
    runtime = _exported(boosted, tmp_path / "b.mle")
    np.testing.assert_allclose(runtime.predict_proba(test), boosted.predict_proba(test), rtol=1e-9, atol=1e-12)
    linear = _exported(LogisticRegression().fit(train, _target(train)), tmp_path / "l.mle")
    with pytest.raises(ValueError, match="contains NaN"):
        linear.predict(test)


def test_a_column_that_is_not_numbers_is_refused_by_name(tmp_path: Path) -> None:
    train = _mixed_frame(300, 0)
    runtime = _exported(LogisticRegression().fit(train, _target(train)), tmp_path / "m.mle")
    bad = _mixed_frame(5, 1).astype({"visits": object})
    bad.loc[2, "visits"] = "many"
    with pytest.raises(ValueError, match="column 'visits' must hold numbers"):
        runtime.predict(bad)


def test_arrays_of_boxed_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    model = LogisticRegression().fit(X, X[:, 0] > 0)
    runtime = _exported(model, tmp_path / "m.mle")
    np.testing.assert_array_equal(runtime.predict(X.astype(object)), model.predict(X.astype(object)))
    mixed = [[1, 2.5, True, np.float32(0.5)], [0, -1.0, False, 3]]
    np.testing.assert_array_equal(runtime.predict(mixed), model.predict(mixed))
    with pytest.raises(ValueError, match="not a number: 'x'"):
        runtime.predict(np.array([[1.0, "x", 2.0, 3.0]], dtype=object))
    # None is a missing value (NaN), as scikit-learn's HistGradientBoosting reads it
    with pytest.raises(ValueError, match="contains NaN"):
        runtime.predict([[1.0, None, 2.0, 3.0]])
    boosted = HistGradientBoostingClassifier(max_iter=10).fit(X, X[:, 0] > 0)
    with_none = [[1.0, None, 2.0, 3.0], [None, 0.5, None, -1]]
    with_na = np.array([[1.0, pd.NA, 2.0, 3.0]], dtype=object)
    np.testing.assert_array_equal(
        _exported(boosted, tmp_path / "b.mle").predict(with_na), boosted.predict([[1.0, np.nan, 2.0, 3.0]])
    )
    np.testing.assert_array_equal(_exported(boosted, tmp_path / "b.mle").predict(with_none), boosted.predict(with_none))


def test_a_stack_takes_sparse_and_mixed_inputs(
    sparse_data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = sparse_data
    models = [LogisticRegression(C=c).fit(X, y) for c in (0.1, 1.0, 10.0)]
    stacked = mle.stack([_exported(m, tmp_path / f"{i}.mle") for i, m in enumerate(models)])
    whole = stacked.predict_proba(X)
    monkeypatch.setattr(inputs, "SPARSE_BLOCK_BYTES", 250 * 40 * 8)  # blocks of 250 rows: 250, 250, 100
    blocks = stacked.run(X)
    logs = stacked.predict_log_proba(X)
    for i, m in enumerate(models):
        np.testing.assert_allclose(whole[i], m.predict_proba(X), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(logs[i], m.predict_log_proba(X), rtol=1e-9)
        np.testing.assert_allclose(blocks[1][i], m.predict_proba(X), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(blocks[0][i], m.predict(X))
    train = _mixed_frame(300, 0)
    frames = [LogisticRegression(C=c).fit(train, _target(train)) for c in (0.1, 1.0)]
    stacked = mle.stack([_exported(m, tmp_path / f"f{i}.mle") for i, m in enumerate(frames)])
    test = _mixed_frame(40, 1).astype({"amount": "Float64"})
    for i, m in enumerate(frames):
        np.testing.assert_allclose(stacked.predict_proba(test)[i], m.predict_proba(test), rtol=1e-12, atol=1e-12)


class _TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image, self.extra = torch.nn.Linear(3, 2), torch.nn.Linear(5, 2)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.image(image) * self.extra(extra)


def test_inputs_by_name_and_tensors(tmp_path: Path) -> None:
    """A mapping from the inputs' names (as Keras's predict takes a dict), in any order; PyTorch tensors,
    even ones that need their gradient, and a lone tensor as the one input."""
    torch.manual_seed(0)
    model = _TwoInputs().eval()
    mle.export_model(model, tmp_path / "two.mle", example_inputs=(torch.randn(1, 3), torch.randn(1, 5)))
    runtime = mle.load_model(tmp_path / "two.mle")
    image, extra = torch.randn(6, 3, requires_grad=True), torch.randn(6, 5)
    want = model(image, extra).detach().numpy()
    np.testing.assert_allclose(runtime.run({"extra": extra, "image": image})[0], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runtime.run([image, extra.numpy()])[0], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"takes \['image', 'extra'\]; missing \['extra'\], unknown \['extr'\]"):
        runtime.run({"image": image, "extr": extra})
    one = torch.nn.Linear(4, 2).eval()
    mle.export_model(one, tmp_path / "one.mle", input_shape=(1, 4))
    x = torch.randn(3, 4, requires_grad=True)
    np.testing.assert_allclose(
        mle.load_model(tmp_path / "one.mle").run(x)[0], one(x).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_log_probabilities_are_the_logs_of_the_probabilities(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    for model in (LogisticRegression(), RandomForestClassifier(10, random_state=0), GaussianNB()):
        model.fit(X, y)
        runtime = _exported(model, tmp_path / "m.mle")
        with np.errstate(divide="ignore"):  # (a forest's leaves give probabilities of 0)
            want = model.predict_log_proba(X)
        finite = np.isfinite(want)
        got = runtime.predict_log_proba(X)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        GaussianNB,
        QuadraticDiscriminantAnalysis,
        NearestCentroid,
        LinearDiscriminantAnalysis,
        lambda: make_pipeline(StandardScaler(), GaussianNB()),
        lambda: BaggingClassifier(GaussianNB(), n_estimators=4, random_state=0),
    ],
)
def test_log_probabilities_computed_from_scores_where_the_model_computes_them_so(make: Any, tmp_path: Path) -> None:
    """Far from the training data the probabilities underflow to 0. Naive Bayes, QDA, NearestCentroid and
    a bagging of naive Bayes models take the log from their scores (finite); LDA reads a 0 as the smallest
    normal number. The plain log of the probabilities would give -inf for all of them."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    model = make().fit(X, y)
    far = rng.normal(size=(50, 4)) * 400
    want = model.predict_log_proba(far)
    assert np.isfinite(want).all() and (model.predict_proba(far) == 0).any()
    runtime = _exported(model, tmp_path / "m.mle")
    got = runtime.predict_log_proba(far)
    # (XLA flushes subnormal probabilities to 0: LDA's logs between -745 and -708.4 are not compared)
    normal = want >= np.log(np.finfo(float).smallest_normal)
    np.testing.assert_allclose(got[normal], want[normal], rtol=1e-9)
    assert np.isfinite(got).all()


def test_multinomial_naive_bayes_log_probabilities_of_long_documents(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    counts = rng.poisson(2, size=(300, 30))
    y = (counts[:, 0] > 2).astype(int) + (counts[:, 1] > 3)
    model = MultinomialNB().fit(counts, y)
    long = rng.poisson(2, size=(20, 30)) * 300  # probabilities of 0 and 1 in float64
    want = model.predict_log_proba(long)
    assert (model.predict_proba(long) == 0).any()
    got = _exported(model, tmp_path / "m.mle").predict_log_proba(long)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    stacked = mle.stack([_exported(MultinomialNB(alpha=a).fit(counts, y), tmp_path / f"{a}.mle") for a in (0.5, 1)])
    for logs, alpha in zip(stacked.predict_log_proba(long), (0.5, 1), strict=True):
        np.testing.assert_allclose(
            logs, MultinomialNB(alpha=alpha).fit(counts, y).predict_log_proba(long), rtol=1e-9, atol=1e-12
        )
