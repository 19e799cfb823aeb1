"""The runtime's public surface: inputs, buckets, devices, as_jax, info and benchmark helpers, errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA, SparseCoder
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.impute._iterative import IterativeImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.manifold import Isomap, SpectralEmbedding
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer, RadiusNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mle_runtime as mle
from mle_runtime import buckets, devices, lowering
from mle_runtime.inputs import contiguous, converted
from mle_runtime.runtime import INLINE_ROWS, INLINE_WORK_BYTES, precision_scope


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogisticRegression, Path, np.ndarray]:
    X, y = make_classification(600, 6, n_informative=4, n_classes=3, random_state=0)
    columns = [f"f{i}" for i in range(6)]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(pd.DataFrame(X, columns=columns), y)
    path = tmp_path_factory.mktemp("runtime") / "clf.mle"
    mle.export_model(model, path)
    return model, path, X


def test_batch_sizes_compile_a_bounded_number_of_times(tmp_path: Path) -> None:
    X, y = make_regression(400, 5, random_state=1)
    model = Ridge().fit(X, y)
    mle.export_model(model, tmp_path / "r.mle")
    runtime = mle.load_model(tmp_path / "r.mle", precision="float64", cache=False)
    rng = np.random.default_rng(0)
    sizes = [1, 2, 3, 7, 8, 9, 100, 1000, 1023, 1025, 8191, 8192, 8193, 30_000, 100_000]
    sizes += [int(s) for s in rng.integers(1, 100_001, 10)]
    big = rng.normal(size=(100_000, 5))
    for n in sizes:
        np.testing.assert_allclose(runtime.predict(big[:n]), model.predict(big[:n]), rtol=1e-10, atol=1e-9)
    bound = buckets.max_compiles(buckets.CPU_MAX_BUCKET)
    assert bound == 23
    assert 1 <= runtime.stats["compiles"] <= bound


def test_the_predictive_std_is_computed_only_by_calls_that_ask_for_it(tmp_path: Path) -> None:
    from sklearn.gaussian_process import GaussianProcessRegressor

    X, y = make_regression(60, 3, noise=1.0, random_state=2)
    model = GaussianProcessRegressor(alpha=0.1, normalize_y=True).fit(X, y)
    mle.export_model(model, tmp_path / "gp.mle")
    runtime = mle.load_model(tmp_path / "gp.mle", precision="float64")
    expected_mean, expected_std = model.predict(X + 0.5, return_std=True)
    np.testing.assert_allclose(runtime.predict(X + 0.5), expected_mean, rtol=1e-9)
    assert [key[-1] for key in runtime._executables] == [("predictions",)]  # no std in predict's program
    mean, std = runtime.predict(X + 0.5, return_std=True)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9)
    np.testing.assert_allclose(std, expected_std, rtol=1e-8)
    assert [key[-1] for key in runtime._executables] == [("predictions",), ("predictions", "std")]
    assert runtime.run([X])[0].shape == (60,)  # run() gives the run outputs only
    reloaded = mle.load_model(tmp_path / "gp.mle", precision="float64")  # each program cached under its own key
    np.testing.assert_array_equal(reloaded.predict(X + 0.5, return_std=True)[1], std)
    np.testing.assert_array_equal(reloaded.predict(X + 0.5), mean)
    assert reloaded.stats == {"compiles": 0, "cache_hits": 2}
    mle.export_model(Ridge().fit(X, y), tmp_path / "ridge.mle")
    with pytest.raises(ValueError, match=r"Ridge gives no predictive standard deviation \(return_std=True\)"):
        mle.load_model(tmp_path / "ridge.mle").predict(X, return_std=True)


def test_kneighbors_are_computed_only_by_calls_that_ask_for_them(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsRegressor

    X, y = make_regression(300, 4, random_state=3)
    model = make_pipeline(StandardScaler(), KNeighborsRegressor(5, weights="distance")).fit(X, y)
    mle.export_model(model, tmp_path / "knn.mle")
    runtime = mle.load_model(tmp_path / "knn.mle", precision="float64")
    queries = X[:40] + 0.25
    np.testing.assert_allclose(runtime.predict(queries), model.predict(queries), rtol=1e-12)
    assert [key[-1] for key in runtime._executables] == [("predictions",)]  # no kneighbors in predict's program
    distances, indices = runtime.kneighbors(queries)
    expected_distances, expected_indices = model[-1].kneighbors(model[0].transform(queries))
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)
    np.testing.assert_array_equal(runtime.kneighbors(queries, n_neighbors=2, return_distance=False), indices[:, :2])
    for wrong in (0, 6):
        with pytest.raises(ValueError, match=rf"n_neighbors={wrong}: this file searches for 1 to 5 neighbours"):
            runtime.kneighbors(queries, n_neighbors=wrong)
    mle.export_model(Ridge().fit(X, y), tmp_path / "ridge.mle")
    with pytest.raises(AttributeError, match=r"Ridge has no kneighbors\(\)"):
        mle.load_model(tmp_path / "ridge.mle").kneighbors(X)


def test_bucket_arithmetic() -> None:
    sizes = (1, 2, 3, 5, 8, 9, 1023, 1024, 1025, 1281, 2049, 5000, 7169, 8191, 8192, 9000)
    expected = [1, 2, 4, 8, 8, 16, 1024, 1024, 1280, 1536, 2560, 5120, 8192, 8192, 8192, 8192]
    assert [buckets.bucket_for(n, 8192) for n in sizes] == expected
    assert buckets.bucket_for(10_000, 16_384) == 10_240  # a quarter step of the octave past 8,192
    for max_bucket in (1, 512, 1024, 2048, 8192, 65536):  # max_compiles counts every bucket there is
        assert len({buckets.bucket_for(n, max_bucket) for n in range(1, max_bucket + 1)}) == buckets.max_compiles(
            max_bucket
        )
    assert list(buckets.chunks(8200, 8192)) == [(0, 8192, 8192), (8192, 8200, 8)]


def test_padded_rows_are_zero_padded_into_aligned_memory() -> None:
    rng = np.random.default_rng(0)
    unaligned = np.frombuffer(rng.normal(size=1001).astype(np.float32).tobytes(), np.float32)[1:].reshape(100, 10)
    assert unaligned.ctypes.data % 64 != 0
    for a, axis, rows in [(unaligned, 0, 128), (unaligned.reshape(4, 25, 10), 1, 32)]:
        out = buckets.padded_rows(a, rows, axis)
        assert out.ctypes.data % 64 == 0 and out.flags.c_contiguous and out.dtype == a.dtype
        assert out.shape[axis] == rows and out.shape[:axis] == a.shape[:axis]
        np.testing.assert_array_equal(np.take(out, range(a.shape[axis]), axis=axis), a)
        assert not np.take(out, range(a.shape[axis], rows), axis=axis).any()
    assert buckets.padded_rows(unaligned, 100) is unaligned  # nothing to pad: passed on as it is


def unaligned_copy(a: np.ndarray) -> np.ndarray:
    """``a``'s values at an address 16 bytes past a 64-byte boundary, as numpy's own allocations often lie."""
    buffer = np.empty(a.nbytes + 128, np.uint8)
    start = -buffer.ctypes.data % 64 + 16
    out = buffer[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def test_converted_inputs_past_xlas_inline_copy_land_in_aligned_memory() -> None:
    rng = np.random.default_rng(0)
    for rows, aligned in ((300, True), (30, False)):  # 300 x 200 float32: 240 KB; 30 rows: 24 KB
        wide = rng.normal(size=(rows, 200))
        assert (rows * 200 * 4 > buckets.XLA_INLINE_COPY_BYTES) == aligned
        for given in (wide, wide[:, ::2], np.asfortranarray(wide), wide > 0):
            out = contiguous(given, np.dtype(np.float32))
            assert out.flags.c_contiguous and out.dtype == np.float32
            assert out.ctypes.data % 64 == 0 or not aligned
            np.testing.assert_array_equal(out, given.astype(np.float32))
        ready = unaligned_copy(wide.astype(np.float32))
        assert contiguous(ready, np.dtype(np.float32)) is ready  # nothing to convert: not copied here
        copied = converted(wide, np.dtype(np.float64))  # always a copy, even with nothing to convert
        assert copied is not wide and copied.flags.c_contiguous
        assert copied.ctypes.data % 64 == 0 or not aligned
        np.testing.assert_array_equal(copied, wide)


def test_staging_copies_only_unaligned_inputs_past_xlas_inline_copy() -> None:
    staging = buckets.Staging()
    rng = np.random.default_rng(1)
    large = unaligned_copy(rng.normal(size=(64, 784)).astype(np.float32))  # 200 KB
    small = unaligned_copy(rng.normal(size=(16, 784)).astype(np.float32))  # 50 KB: XLA copies it inline
    huge = unaligned_copy(rng.normal(size=(512, 784)).astype(np.float32))  # 1.6 MB: past MAX_BYTES
    aligned = converted(large, large.dtype)  # (200 KB: aligned)
    assert small.nbytes <= buckets.Staging.MIN_BYTES < large.nbytes <= buckets.Staging.MAX_BYTES < huge.nbytes
    arrays = [large, small, huge, aligned]
    taken = staging.take(arrays)
    assert len(taken) == 1 and arrays[0] is taken[0] and arrays[1:] == [small, huge, aligned]
    assert taken[0].ctypes.data % 64 == 0
    np.testing.assert_array_equal(taken[0], large)
    again = [large]
    assert staging.take(again)[0] is not taken[0]  # a buffer taken is nobody else's until given back
    staging.give_back(taken)
    other = unaligned_copy(rng.normal(size=(64, 784)).astype(np.float32))
    reused = [other]
    assert staging.take(reused) == taken  # the same buffer, now holding the new values
    np.testing.assert_array_equal(reused[0], other)


def test_inputs_staged_for_the_inline_client_answer_right_call_after_call(tmp_path: Path) -> None:
    X, y = make_classification(400, 784, n_informative=30, n_classes=3, random_state=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier((32,), max_iter=20, random_state=0).fit(X, y)
    mle.export_model(model, tmp_path / "mlp.mle")
    runtime = mle.load_model(tmp_path / "mlp.mle", cache=False)
    batches = [unaligned_copy(X[i : i + 64].astype(np.float32)) for i in (0, 64, 128)]
    answers = [runtime.predict_proba(b) for b in batches]  # each staged through the one buffer
    assert len(runtime._staging._free) == 1
    for b, answer in zip(batches, answers, strict=True):
        np.testing.assert_allclose(answer, model.predict_proba(b.astype(np.float64)), rtol=1e-4, atol=1e-5)
    (compiled,) = runtime._executables.values()
    assert next(iter(compiled.input_shardings[0][0].values())).device_set == {devices.inline_cpu_device()}


def test_parameters_share_the_mapped_file_on_cpu(tmp_path: Path) -> None:
    X, y = make_regression(300, 40, random_state=3)
    mle.export_model(Ridge().fit(X, y), tmp_path / "r.mle")
    runtime = mle.load_model(tmp_path / "r.mle", precision="float64")  # float64 weights used as stored
    runtime.predict(X[:5])  # (places the parameters on the runtime's own CPU client too)
    mapped = runtime._require().tensors
    assert runtime._inline_params is not None
    for params in (runtime._params, runtime._inline_params):
        for name, array in params.items():
            assert array.unsafe_buffer_pointer() == mapped[name].ctypes.data, name


def test_parameters_are_placed_on_the_cpu_client_a_run_first_uses(tmp_path: Path) -> None:
    X, y = make_regression(300, 40, random_state=3)
    model = Ridge().fit(X, y)
    mle.export_model(model, tmp_path / "r.mle")
    runtime = mle.load_model(tmp_path / "r.mle")
    assert runtime._placed is None and runtime._inline_params is None  # the load placed nothing
    np.testing.assert_allclose(runtime.predict(X[:5]), model.predict(X[:5]), rtol=1e-5, atol=1e-4)
    assert runtime._inline_params is not None and runtime._placed is None  # a light batch: the inline client's
    fn, params = runtime.as_jax()  # JAX's own client, placed now
    assert runtime._placed is not None and params.keys() == runtime._placed.keys()
    (out,) = fn(params, X[:5].astype(np.float32)).values()
    np.testing.assert_allclose(np.asarray(out).ravel(), model.predict(X[:5]), rtol=1e-5, atol=1e-4)


def test_batches_of_one_chunk_run_on_the_runtimes_synchronous_cpu_client(tmp_path: Path) -> None:
    X, y = make_regression(300, 8, random_state=4)
    model = Ridge().fit(X, y)
    mle.export_model(model, tmp_path / "r.mle")
    runtime = mle.load_model(tmp_path / "r.mle", precision="float64", cache=False)
    runtime._max_bucket = 16  # 40 rows: chunks of 16, 16 and 8
    for n in (1, 9, 16, 40):
        np.testing.assert_allclose(runtime.predict(X[:n]), model.predict(X[:n]), rtol=1e-10, atol=1e-9)

    def client(compiled: Any) -> Any:
        (device,) = next(iter(compiled.input_shardings[0][0].values())).device_set
        return device.client

    inline, shared = devices.inline_cpu_device(), jax.devices("cpu")[0]
    assert inline is not None and inline.client is not shared.client
    clients = {signature[0][0][0]: client(c) for signature, c in runtime._executables.items()}
    assert clients == {1: inline.client, 8: inline.client, 16: shared.client}, clients
    heavy = mle.load_model(tmp_path / "r.mle", precision="float64", cache=False)
    heavy._inline_rows = 2  # as for a model with INLINE_WORK_BYTES / 2 parameter bytes
    for n in (2, 5):
        np.testing.assert_allclose(heavy.predict(X[:n]), model.predict(X[:n]), rtol=1e-10, atol=1e-9)
    clients = {signature[0][0][0]: client(c) for signature, c in heavy._executables.items()}
    assert clients == {2: inline.client, 8: shared.client}, clients
    _, params = runtime.as_jax()  # as_jax's parameters stay on JAX's own device
    assert all(a.devices() == {shared} for a in params.values())


def test_a_batch_of_up_to_64_rows_runs_inline_whatever_the_models_size(tmp_path: Path) -> None:
    X, y = make_classification(400, 1000, n_informative=40, n_classes=20, random_state=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=30).fit(X, y)
    mle.export_model(model, tmp_path / "lr.mle")
    runtime = mle.load_model(tmp_path / "lr.mle", cache=False)
    parameter_bytes = sum(a.nbytes for a in runtime._host_params.values())  # 1,000 x 20 float32 weights
    assert 64 * parameter_bytes > INLINE_WORK_BYTES  # the work alone would send 64 rows to JAX's client
    assert runtime._inline_rows == INLINE_ROWS == 64
    for n in (64, 65):
        np.testing.assert_allclose(runtime.predict_proba(X[:n]), model.predict_proba(X[:n]), rtol=1e-4, atol=1e-5)
    clients = {
        signature[0][0][0]: next(iter(c.input_shardings[0][0].values())).device_set
        for signature, c in runtime._executables.items()
    }
    assert clients == {64: {devices.inline_cpu_device()}, 128: {jax.devices("cpu")[0]}}, clients


def test_the_synchronous_cpu_client_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLE_INLINE_CPU", "0")
    assert devices._make_inline_cpu_device() is None
    monkeypatch.setenv("MLE_INLINE_CPU", "1")
    assert devices._make_inline_cpu_device() is not None


def test_network_chunks_keep_the_largest_activation_in_the_budget() -> None:
    budget = buckets.CPU_ACTIVATION_BUDGET
    assert buckets.cpu_chunk(8192, budget // 100) == 64  # the power of two at or below 100 rows
    assert buckets.cpu_chunk(8192, budget) == 16  # never fewer than 16 rows
    assert buckets.cpu_chunk(8192, 4) == 8192  # never more than the bucket limit
    for malformed in (None, 0, -5, True, "64", 1.5):
        assert buckets.cpu_chunk(8192, malformed) == 8192


def _ynn_in(compiled: Any) -> bool:
    return "__ynn_fusion" in compiled.as_text()


def test_cpu_programs_send_only_small_dots_to_ynnpack() -> None:
    """XLA's own dots for programs whose work is in large dots, its own convolutions and reductions always
    (lowering.compile_program); the same answers either way."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(64, 64)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(8, 4, 3, 3)), jnp.float32)

    def dense(a: jax.Array, w: jax.Array) -> jax.Array:
        return jnp.tanh(a @ w)

    def scanned(a: jax.Array, w: jax.Array) -> jax.Array:  # the large dot inside a scan's body
        return jax.lax.scan(lambda c, x: (c, dense(x, w)), 0.0, a.reshape(2, -1, a.shape[1]))[1].reshape(a.shape)

    def conv(x: jax.Array, k: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")).sum()

    small, large = (jnp.asarray(rng.normal(size=(n, 64)), jnp.float32) for n in (16, 4096))
    images = jnp.asarray(rng.normal(size=(2, 4, 16, 16)), jnp.float32)
    programs = {
        "small": lowering.compile_program(dense, (small, w), "cpu"),
        "large": lowering.compile_program(dense, (large, w), "cpu"),
        "scanned": lowering.compile_program(scanned, (large, w), "cpu"),
        "conv": lowering.compile_program(conv, (images, kernel), "cpu"),
    }
    if not lowering._options_refused:  # (a JAX whose XLA names the options otherwise compiles with its defaults)
        assert _ynn_in(programs["small"])
        assert not _ynn_in(programs["large"]) and not _ynn_in(programs["scanned"]) and not _ynn_in(programs["conv"])
    np.testing.assert_allclose(programs["small"](small, w), np.tanh(np.asarray(small) @ np.asarray(w)), atol=1e-5)
    np.testing.assert_allclose(programs["large"](large, w), np.tanh(np.asarray(large) @ np.asarray(w)), atol=1e-5)
    np.testing.assert_allclose(programs["scanned"](large, w), programs["large"](large, w), atol=1e-6)
    np.testing.assert_allclose(programs["conv"](images, kernel), jax.jit(conv)(images, kernel), rtol=1e-5)


def test_an_xla_that_refuses_the_option_compiles_with_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lowering, "YNN_DOTS", "LIBRARY_FUSION_TYPE_NO_SUCH_KIND")
    monkeypatch.setattr(lowering, "_options_refused", [])
    a = jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4)
    compiled = lowering.compile_program(lambda x: x @ x.T, (a,), "cpu")
    np.testing.assert_array_equal(compiled(a), np.asarray(a) @ np.asarray(a).T)
    assert len(lowering._options_refused) == 1 and lowering.YNN_OPTION in lowering._options_refused[0]


def test_inputs_of_many_kinds(classifier) -> None:
    model, path, X = classifier
    runtime = mle.load_model(path)
    frame = pd.DataFrame(X[:20], columns=[f"f{i}" for i in range(6)])
    want = model.predict(frame)
    np.testing.assert_array_equal(runtime.predict(frame), want)
    np.testing.assert_array_equal(runtime.run([X[:20].tolist()])[0], want)
    np.testing.assert_array_equal(runtime.run(frame)[0], want)
    ints = np.round(X[:20]).astype(np.int32)
    np.testing.assert_array_equal(runtime.predict(ints), model.predict(pd.DataFrame(ints, columns=frame.columns)))
    empty = runtime.run([X[:0]])
    assert empty[0].shape == (0,) and empty[1].shape == (0, 3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((3, 5)), "expected 6 features, got 5"),
        (np.zeros(6), "one row\\? use X.reshape"),
        (np.zeros((2, 3, 6)), "expected a 2-D array"),
        (np.array(1.0), "expected a 2-D array"),  # (found by fuzz_files.py: once a TypeError)
        (np.array([["a"] * 6]), "not numeric"),
        (pd.DataFrame(np.zeros((2, 6)), columns=[f"g{i}" for i in range(6)]), "missing \\['f0'"),
        (pd.DataFrame(np.zeros((2, 6)), columns=[f"f{i}" for i in reversed(range(6))]), "different order"),
    ],
)
def test_bad_inputs_are_value_errors(classifier, bad, message: str) -> None:
    runtime = mle.load_model(classifier[1])
    with pytest.raises(ValueError, match=message):
        runtime.run([bad])


def test_wrong_number_of_inputs(classifier) -> None:
    runtime = mle.load_model(classifier[1])
    with pytest.raises(ValueError, match="takes 1 input"):
        runtime.run([np.zeros((1, 6)), np.zeros((1, 6))])
    with pytest.raises(ValueError, match="list of arrays"):
        runtime.run("X")


def test_devices(classifier) -> None:
    model, path, X = classifier
    assert mle.load_model(path, device="auto").get_model_info()["device"]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    for name in ("cuda", "gpu"):
        if gpus:
            np.testing.assert_array_equal(mle.load_model(path, device=name).predict(X), model.predict(X))
        else:
            with pytest.raises(RuntimeError, match="sees no GPU; available devices: \\['cpu:0"):
                mle.load_model(path, device=name)
    with pytest.raises(RuntimeError, match="unknown device"):
        mle.load_model(path, device="tpu-ish")
    with pytest.raises(RuntimeError, match="does not exist"):
        mle.load_model(path, device="cpu:7")


def test_as_jax_composes_with_jit_vmap_and_grad(tmp_path: Path) -> None:
    X, y = make_regression(300, 4, random_state=3)
    reg = LinearRegression().fit(X, y)
    mle.export_model(reg, tmp_path / "lin.mle")
    fn, params = mle.load_model(tmp_path / "lin.mle").as_jax()
    Xf = jnp.asarray(X[:16], jnp.float32)
    out = jax.jit(fn)(params, Xf)["predictions"]
    np.testing.assert_allclose(out, reg.predict(X[:16]), rtol=1e-5, atol=1e-3)
    rows = jax.vmap(lambda row: fn(params, row)["predictions"])(Xf)
    np.testing.assert_allclose(rows, out, rtol=1e-6)
    grad = jax.grad(lambda x: fn(params, x)["predictions"].sum())(Xf)
    np.testing.assert_allclose(grad, np.tile(reg.coef_, (16, 1)), rtol=1e-5)

    Xc, yc = make_classification(300, 4, n_informative=2, n_redundant=1, random_state=4)
    clf = LogisticRegression().fit(Xc, yc)
    mle.export_model(clf, tmp_path / "log.mle")
    fn, params = mle.load_model(tmp_path / "log.mle", precision="float64").as_jax()
    with precision_scope("float64"):
        x0 = jnp.asarray(Xc[:1])
        g = jax.grad(lambda x: fn(params, x)["probabilities"][0, 1])(x0)
        eps = 1e-6
        fd = [
            (
                clf.predict_proba(Xc[:1] + eps * np.eye(4)[i])[0, 1]
                - clf.predict_proba(Xc[:1] - eps * np.eye(4)[i])[0, 1]
            )
            / (2 * eps)
            for i in range(4)
        ]
        np.testing.assert_allclose(np.asarray(g)[0], fd, rtol=1e-6)


def test_info_benchmark_inspect_and_version(classifier) -> None:
    _, path, X = classifier
    runtime = mle.MLERuntime()
    info = runtime.load_model(path)
    for key in ("version", "features", "metadata", "inputs", "outputs", "operators", "compression_stats"):
        assert key in info
    assert [o["name"] for o in info["outputs"]] == ["label", "probabilities"]
    assert info["metadata"]["feature_names"] == [f"f{i}" for i in range(6)]
    stats = runtime.benchmark([X[:100]], num_runs=5)
    for key in ("mean_ms", "std_ms", "min_ms", "max_ms", "median_ms", "p95_ms", "throughput_rows_per_s"):
        assert stats[key] >= 0
    assert stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
    assert mle.benchmark_model(path, [X[:10]], num_runs=3)["num_runs"] == 3
    report = mle.inspect_model(path)
    assert report["basic_info"]["metadata"]["estimator"] == "sklearn.pipeline.Pipeline"
    assert report["file_size"] == path.stat().st_size and report["recommendations"]
    version = mle.get_version_info()
    assert version["version"] == mle.__version__ and "cpu" in version["backends"]
    assert set(mle.get_supported_operators()) >= set(info["operators"])


def test_refusals(classifier, tmp_path: Path) -> None:
    _, path, X = classifier
    with pytest.raises(TypeError, match="SpectralEmbedding is not supported; supported: .*LogisticRegression"):
        mle.export_model(SpectralEmbedding(n_components=2).fit(X), tmp_path / "spectral.mle")
    with pytest.raises(TypeError, match=r"transform_algorithm='lasso_lars'\) is not supported \(an iterative solver\)"):
        mle.export_model(SparseCoder(np.eye(X.shape[1]), transform_algorithm="lasso_lars"), tmp_path / "coder.mle")
    imputer = IterativeImputer(sample_posterior=True, max_iter=1, random_state=0).fit(X)
    with pytest.raises(TypeError, match=r"IterativeImputer\(sample_posterior=True\) draws random samples"):
        mle.export_model(imputer, tmp_path / "imputer.mle")
    graph = make_pipeline(KNeighborsTransformer(n_neighbors=3), KNeighborsClassifier(metric="precomputed"))
    with pytest.raises(TypeError, match="gives a neighbour graph, which only an estimator with a precomputed metric"):
        mle.export_model(graph.fit(X, X[:, 0] > 0), tmp_path / "graph.mle")
    with pytest.raises(TypeError, match=r"Isomap fitted with a radius \(n_neighbors=None\) is not supported"):
        mle.export_model(Isomap(n_neighbors=None, radius=100.0, n_components=2).fit(X), tmp_path / "isomap.mle")
    with pytest.raises(TypeError, match="cannot tell which framework"):
        mle.export_model(object(), tmp_path / "o.mle")
    unknown_outlier = RadiusNeighborsClassifier(radius=5.0, outlier_label=7).fit(X, (X[:, 0] > 0).astype(int))
    with pytest.raises(TypeError, match=r"outlier_label 7 is not one of the classes \[0, 1\]"):
        mle.export_model(unknown_outlier, tmp_path / "radius.mle")
    with pytest.raises(ValueError, match="not fitted"):
        mle.export_model(LogisticRegression(), tmp_path / "u.mle")
    with pytest.raises(ValueError, match="FrozenEstimator is not fitted"):
        mle.export_model(FrozenEstimator(LogisticRegression()), tmp_path / "u.mle")
    with pytest.raises(ValueError, match="disagrees"):
        mle.export_model(LogisticRegression().fit(X, X[:, 0] > 0), tmp_path / "s.mle", input_shape=(1, 4))
    with pytest.raises(TypeError, match="unexpected options"):
        mle.export_model(LogisticRegression().fit(X, X[:, 0] > 0), tmp_path / "s.mle", compresion=True)
    runtime = mle.load_model(path)
    with pytest.raises(AttributeError, match="has no transform"):
        runtime.transform(X)
    with pytest.raises(AttributeError, match=r"Pipeline has no mahalanobis\(\) \(outputs: \['label'"):
        runtime.mahalanobis(X)
    with pytest.raises(mle.SignatureError, match="not signed"):
        mle.load_model(path, verify_signature=True, public_key=b"\0" * 32)
    with pytest.raises(TypeError, match="unexpected options"):
        mle.load_model(path, verify=True)
    with pytest.raises(RuntimeError, match="no model loaded"):
        mle.MLERuntime().run([X])
    with pytest.raises(ValueError, match="precision"):
        mle.load_model(path, precision="float16")


def test_pca_without_noise_variance_has_no_score_samples(tmp_path: Path) -> None:
    """As many components as rows, fewer than features: no variance is left for the noise, scikit-learn's
    score_samples inverts a singular covariance (and warns), and the file gives transform alone."""
    X = np.random.default_rng(0).normal(size=(20, 30))
    model = PCA(20).fit(X)
    assert model.noise_variance_ == 0.0
    mle.export_model(model, tmp_path / "pca.mle")
    runtime = mle.load_model(tmp_path / "pca.mle", precision="float64")
    np.testing.assert_allclose(runtime.transform(X), model.transform(X), rtol=1e-9, atol=1e-9)
    with pytest.raises(AttributeError, match=r"PCA has no score_samples\(\)"):
        runtime.score_samples(X)


def test_float64_mode_returns_float64(classifier) -> None:
    model, path, X = classifier
    _, proba = mle.load_model(path, precision="float64").run([X[:5]])
    assert proba.dtype == np.float64
    frame = pd.DataFrame(X[:5], columns=[f"f{i}" for i in range(6)])
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=1e-12)
    assert not jax.config.jax_enable_x64  # the runtime's x64 scope does not leak


def test_failed_reload_leaves_the_loaded_model_usable(classifier, tmp_path: Path) -> None:
    model, path, X = classifier
    runtime = mle.MLERuntime()
    runtime.load_model(path)
    broken = tmp_path / "broken.mle"
    broken.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(mle.FormatError):
        runtime.load_model(broken, precision="float64")
    assert runtime.precision == "float32"
    frame = pd.DataFrame(X[:5], columns=[f"f{i}" for i in range(6)])
    np.testing.assert_array_equal(runtime.predict(frame), model.predict(frame))


def test_non_finite_inputs_are_refused_as_scikit_learn_refuses_them(classifier, tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer

    model, path, X = classifier
    frame = pd.DataFrame(X[:4], columns=[f"f{i}" for i in range(6)])
    imputing = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, X[:, 0] > 0)
    mle.export_model(imputing, tmp_path / "imp.mle")
    runtime, tolerant = mle.load_model(path), mle.load_model(tmp_path / "imp.mle")
    for value, message in ((np.nan, "contains NaN"), (np.inf, "contains infinity")):
        bad = frame.copy()
        bad.iloc[1, 2] = value
        with pytest.raises(ValueError):
            model.predict(bad)
        with pytest.raises(ValueError, match=message):
            runtime.predict(bad)
    holes = X[:4].copy()
    holes[1, 2] = np.nan
    np.testing.assert_array_equal(tolerant.predict(holes), imputing.predict(holes))
    holes[2, 3] = -np.inf
    with pytest.raises(ValueError):
        imputing.predict(holes)
    with pytest.raises(ValueError, match="contains infinity"):
        tolerant.predict(holes)


def test_check_inputs_false_lets_nan_through(classifier) -> None:
    _, path, X = classifier
    holes = X[:3].copy()
    holes[0, 0] = np.nan
    runtime = mle.load_model(path, check_inputs=False)
    assert np.isnan(runtime.run([holes])[1][0]).all()


def test_radius_neighbours_over_several_blocks_in_float64(tmp_path: Path) -> None:
    """More training rows than one block: the blocks' count carried in int32 met an int64 sum under x64."""
    from sklearn.neighbors import RadiusNeighborsRegressor

    X, y = make_regression(4100, 4, random_state=5)
    model = RadiusNeighborsRegressor(radius=1.5).fit(X, y)
    mle.export_model(model, tmp_path / "r.mle")
    queries = X[:40] + 0.1
    runtime = mle.load_model(tmp_path / "r.mle", precision="float64", cache=False)
    np.testing.assert_allclose(runtime.predict(queries), model.predict(queries), rtol=1e-10, atol=1e-9)
