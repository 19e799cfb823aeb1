"""mle.stack: many models of one structure in one XLA program, equal to a loop over single models."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import mle_runtime as mle

X, y = make_classification(600, 8, n_informative=5, random_state=0)


def _mlp(hidden: tuple[int, ...], seed: int) -> MLPClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs are enough for a stack test
        return MLPClassifier(hidden, max_iter=30, random_state=seed).fit(X, y)


def _export_all(models, tmp_path: Path, stem: str) -> list[Path]:
    paths = []
    for i, m in enumerate(models):
        paths.append(tmp_path / f"{stem}{i}.mle")
        mle.export_model(m, paths[-1])
    return paths


def _assert_equals_loop(stacked: mle.ModelStack, paths: list[Path], inputs: list[np.ndarray]) -> None:
    outputs = stacked.run(inputs)
    for i, path in enumerate(paths):
        single = mle.load_model(path).run([x[i] if x.ndim == 3 else x for x in inputs])
        for got, want in zip(outputs, single, strict=True):
            assert got.shape[0] == len(paths)
            if want.dtype.kind in "fc":
                np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(got[i], want)


def test_cross_validation_folds_of_a_linear_model(tmp_path) -> None:
    folds = [LogisticRegression(C=0.5).fit(X[train], y[train]) for train, _ in KFold(5).split(X)]
    paths = _export_all(folds, tmp_path, "fold")
    stacked = mle.stack(paths)
    assert len(stacked) == 5 and stacked.outputs == ["label", "probabilities"]
    _assert_equals_loop(stacked, paths, [X])
    labels, proba = stacked.run([X])
    for i, model in enumerate(folds):
        np.testing.assert_array_equal(labels[i], model.predict(X))
        np.testing.assert_allclose(proba[i], model.predict_proba(X), rtol=1e-5)
    np.testing.assert_array_equal(stacked.predict(X), labels)
    np.testing.assert_array_equal(stacked.predict_proba(X), proba)


def test_mlp_seeds_and_loaded_runtimes(tmp_path) -> None:
    nets = [_mlp((16,), s) for s in range(3)]
    paths = _export_all(nets, tmp_path, "mlp")
    stacked = mle.stack([mle.load_model(p) for p in paths])
    _assert_equals_loop(stacked, paths, [X[:37]])


def test_forests_of_different_sizes_and_depths_are_padded(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Padding trees (zero single leaves) make the models' tree counts one; the merged walk leaves them
    out (each model's real count is on the stacked node), for a shared and a per-model input."""
    from mle_runtime.ops import trees

    forests = [
        RandomForestClassifier(n, max_depth=d, random_state=n).fit(X[k:], y[k:])
        for k, (n, d) in enumerate([(5, 7), (9, None), (12, 6), (7, 5)])
    ]
    paths = _export_all(forests, tmp_path, "rf")
    stacked = mle.stack(paths)
    (node,) = [n for n in stacked._graph.nodes if n.op == "TreeEnsemble"]
    assert node.attrs["tree_counts"] == [5, 9, 12, 7]
    walked = []
    sums = trees._sums
    monkeypatch.setattr(trees, "_sums", lambda *a: (len(a) == 9 and walked.append(a[-1].shape[0])) or sums(*a))
    _assert_equals_loop(stacked, paths, [X])
    _assert_equals_loop(stacked, paths, [np.stack([X * (1 + m) for m in range(4)])])
    assert walked == [5 + 9 + 12 + 7] * 2
    labels, proba = stacked.run([X])
    for i, model in enumerate(forests):
        np.testing.assert_array_equal(labels[i], model.predict(X))
        np.testing.assert_allclose(proba[i], model.predict_proba(X), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("depths", "trees"), [((1, 2, 4, 3), (6, 6, 6, 6)), ((2, 6, 4), (6, 6, 6)), ((2, 3), (5, 8))])
def test_a_sweep_over_the_depth_of_boosters(depths: tuple[int, ...], trees: tuple[int, ...], tmp_path) -> None:
    """Trees of depth at most 4 are stored as heaps of their depth, deeper ones breadth-first: the stack
    deepens the shallower heaps, or lays heaps out breadth-first beside deeper trees or beside heaps of
    another tree count."""
    from sklearn.ensemble import GradientBoostingClassifier

    from mle_runtime.reader import read_mle

    boosters = [
        GradientBoostingClassifier(n_estimators=n, max_depth=d, random_state=0).fit(X, y)
        for d, n in zip(depths, trees, strict=True)
    ]
    paths = _export_all(boosters, tmp_path, "gb")
    layouts = [n["attrs"].get("layout") for p in paths for n in read_mle(p).graph["nodes"] if n["op"] == "TreeEnsemble"]
    assert layouts == ["perfect" if d <= 4 else None for d in depths]
    stacked = mle.stack(paths)
    _assert_equals_loop(stacked, paths, [X])
    proba = stacked.predict_proba(X)
    for i, model in enumerate(boosters):
        np.testing.assert_allclose(proba[i], model.predict_proba(X), rtol=1e-5, atol=1e-7)


def test_heaps_of_other_tree_counts_or_beside_deep_trees(tmp_path) -> None:
    """(Both were refused: a heap cannot be padded with single-leaf trees, nor walked beside a tree
    stored breadth-first.)"""
    boosters = [xgboost.XGBClassifier(n_estimators=n, max_depth=2).fit(X, y) for n in (3, 5)]
    shallow_and_deep = [RandomForestClassifier(3, max_depth=d, random_state=0).fit(X, y) for d in (2, 9)]
    for stem, models in (("xgb", boosters), ("rf", shallow_and_deep)):
        paths = _export_all(models, tmp_path, stem)
        _assert_equals_loop(mle.stack(paths), paths, [X])


def test_float64_precision_stacks_in_float64(tmp_path) -> None:
    models = [RandomForestRegressor(6, max_depth=d, random_state=d).fit(X, y * 3.0 + X[:, 0]) for d in (6, 9)]
    paths = _export_all(models, tmp_path, "rf")
    stacked = mle.stack([mle.load_model(p, precision="float64") for p in paths])
    predictions = stacked.predict(X)
    assert predictions.dtype == np.float64
    for i, model in enumerate(models):
        np.testing.assert_allclose(predictions[i], model.predict(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [600, 40])
def test_boosters_with_split_tables_stack_as_one_forest(rows: int, tmp_path) -> None:
    """Split tables follow each model's trees (their shapes differ): the stack merges them into one
    forest's, group by group, the trees no group holds walked; a model without them (a heap, made
    breadth-first beside the others) walks all its trees; a per-model input walks every tree. 40 rows are
    too few for the tables: the one forest walks."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mle_runtime.reader import read_mle

    boosters = [
        HistGradientBoostingClassifier(max_iter=n, max_leaf_nodes=leaves, random_state=0).fit(X, y)
        for n, leaves in [(10, 31), (14, 8), (6, 20), (8, 4)]
    ]
    paths = _export_all(boosters, tmp_path, "hgb")
    found = [n["attrs"] for p in paths for n in read_mle(p).graph["nodes"] if n["op"] == "TreeEnsemble"]
    assert [a.get("split_groups") is not None for a in found] == [True, True, True, False]
    assert found[-1]["layout"] == "perfect"
    stacked = mle.stack(paths)
    (node,) = [n for n in stacked._graph.nodes if n.op == "TreeEnsemble"]
    expected: dict[int, int] = {}
    for attrs in found[:3]:
        for n, leaves in attrs["split_groups"]:
            expected[leaves] = expected.get(leaves, 0) + n
    assert node.attrs["split_groups"] == [[n, leaves] for leaves, n in sorted(expected.items())]
    _assert_equals_loop(stacked, paths, [X[:rows]])
    _assert_equals_loop(stacked, paths, [np.stack([X[:rows] * (1 + m) for m in range(len(paths))])])
    for i, model in enumerate(boosters):
        np.testing.assert_array_equal(stacked.run([X[:rows]])[0][i], model.predict(X[:rows]))
        np.testing.assert_allclose(stacked.predict_proba(X[:rows])[i], model.predict_proba(X[:rows]), rtol=1e-5)


def test_lightgbm_linear_trees_of_other_sizes_stack_beside_plain_trees(tmp_path) -> None:
    """Leaves of fewer linear terms are widened to the most any model has; a plain model's leaves are
    constants; padded leaves and trees add 0, whatever the row holds (NaN too)."""
    import lightgbm

    Xn = X.copy()
    Xn[np.random.default_rng(0).random(Xn.shape) < 0.05] = np.nan
    target = np.nan_to_num(Xn[:, 0]) * 2 + y
    boosters = [
        lightgbm.LGBMRegressor(
            linear_tree=linear, n_estimators=n, num_leaves=leaves, max_depth=depth, random_state=0, verbose=-1
        ).fit(Xn, target)
        for linear, n, leaves, depth in [(True, 12, 7, 3), (True, 20, 15, -1), (False, 8, 15, -1)]
    ]
    paths = _export_all(boosters, tmp_path, "linear")
    stacked = mle.stack(paths, precision="float64")
    predictions = stacked.predict(Xn)
    for i, model in enumerate(boosters):
        np.testing.assert_allclose(predictions[i], model.predict(Xn), rtol=1e-12, atol=1e-12)


def test_float64_inputs_are_narrowed_per_model_for_trees_that_split_in_float64(tmp_path) -> None:
    """A float64 value within a float32 step of a threshold takes the branch the float64 comparison
    takes in every stacked model, as in a single runtime (narrowing.py): a shared input and per-model
    inputs, each model narrowing by its own thresholds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    boosters = [HistGradientBoostingClassifier(max_iter=n, random_state=n).fit(X, y) for n in (8, 12)]
    paths = _export_all(boosters, tmp_path, "hgb")
    stacked = mle.stack(paths)
    labels = stacked.run([X])[0]
    per_model = stacked.run([np.stack([X, X[::-1]])])[0]
    for i, model in enumerate(boosters):
        np.testing.assert_array_equal(labels[i], model.predict(X))
        np.testing.assert_array_equal(per_model[i], model.predict([X, X[::-1]][i]))
    assert np.any(labels != stacked.run([X.astype(np.float32)])[0]), "the data has no value near a threshold"


def test_float64_inputs_are_narrowed_a_chunk_at_a_time(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the largest bucket, each model's narrowed copy is made for one chunk at a time, not for the
    whole input (its copies would take models x rows x features x 4 bytes at once)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mle_runtime import model_stack

    boosters = [HistGradientBoostingClassifier(max_iter=n, random_state=n).fit(X, y) for n in (5, 7)]
    paths = _export_all(boosters, tmp_path, "hgb")
    stacked = mle.stack(paths)
    big = np.resize(X, (model_stack.STACK_CPU_MAX_BUCKET + 500, X.shape[1]))
    made = []
    chunk = model_stack._NarrowedPerModel.__getitem__
    monkeypatch.setattr(model_stack._NarrowedPerModel, "__getitem__", lambda s, k: made.append(k) or chunk(s, k))
    labels = stacked.predict(big)
    assert len(made) == 2 and max(k[1].stop - k[1].start for k in made) == model_stack.STACK_CPU_MAX_BUCKET
    for i, model in enumerate(boosters):
        np.testing.assert_array_equal(labels[i], model.predict(big))


def test_per_model_inputs_and_batches_past_the_largest_bucket(tmp_path) -> None:
    Xr, yr = make_regression(300, 5, random_state=0)
    forests = [RandomForestRegressor(4, max_depth=5, random_state=s).fit(Xr, yr + s) for s in range(3)]
    paths = _export_all(forests, tmp_path, "reg")
    stacked = mle.stack(paths)
    per_model = np.stack([Xr[:40] * (1 + s) for s in range(3)]).astype(np.float32)
    _assert_equals_loop(stacked, paths, [per_model])
    big = np.resize(Xr, (20_000, 5))  # past a stack's largest CPU bucket (16,384 rows): two chunks, merged
    (predictions,) = stacked.run([big])
    assert predictions.shape == (3, 20_000)
    assert sorted(key[2][0][0] for key in stacked._compiled) == [
        (3, 64, 5),
        (4096, 5),
        (16384, 5),
    ]  # (3 x 40 rows: the per-model call)
    for i, (model, path) in enumerate(zip(forests, paths, strict=True)):
        np.testing.assert_allclose(predictions[i], mle.load_model(path).run([big])[0], rtol=1e-6)
        scale = np.abs(yr).max()
        np.testing.assert_allclose(predictions[i], model.predict(big.astype(np.float32)), rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("kind", ["forest-multiclass", "booster-multiclass", "forest-multi-output", "heaps"])
def test_forests_reading_one_input_walk_as_one(kind: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacked form of a tree ensemble (every model's trees walked as one forest, each model's summed
    on its own) answers as each model: leaves as wide as the classes, one tree per class and round
    (GradientBoosting's round-robin outputs), several outputs, heaps; an input per model too (each tree
    reading its own model's rows)."""
    from sklearn.ensemble import GradientBoostingClassifier

    from mle_runtime import ops

    X3, y3 = make_classification(500, 6, n_informative=4, n_classes=3, random_state=1)
    if kind == "forest-multiclass":
        models = [RandomForestClassifier(5, max_depth=d, random_state=d).fit(X3, y3) for d in (3, 7, None)]
    elif kind == "booster-multiclass":
        models = [GradientBoostingClassifier(n_estimators=n, max_depth=5, random_state=0).fit(X3, y3) for n in (4, 6)]
    elif kind == "forest-multi-output":
        targets = np.stack([X3[:, 0] + X3[:, 1], X3[:, 2] * 2.0], axis=1)
        models = [RandomForestRegressor(4, max_depth=6, random_state=s).fit(X3, targets + s) for s in range(3)]
    else:
        models = [GradientBoostingClassifier(n_estimators=5, max_depth=d, random_state=0).fit(X3, y3) for d in (2, 3)]
    merged = []
    stacked_form = ops.stacked_form("TreeEnsemble")

    def counted(*args, **attrs):
        merged.append(stacked_form(*args, **attrs) is not None)
        return stacked_form(*args, **attrs)

    monkeypatch.setitem(ops._STACKED, ("TreeEnsemble", 1), counted)
    paths = _export_all(models, tmp_path, "t")
    stacked = mle.stack(paths)
    _assert_equals_loop(stacked, paths, [X3])
    assert merged and all(merged)
    merged.clear()
    _assert_equals_loop(stacked, paths, [np.stack([X3[:30] * (1 + s) for s in range(len(models))])])
    assert merged and all(merged)
    got = stacked.predict_proba(X3) if kind != "forest-multi-output" else stacked.predict(X3)
    for i, model in enumerate(models):
        want = model.predict_proba(X3) if kind != "forest-multi-output" else model.predict(X3)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)


def test_boosters_with_categorical_splits_walk_as_one_forest(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A categorical split's threshold is its row of the model's category bitsets: the one forest reads
    every model's rows of them, unknown and missing categories as each model sends them."""
    import lightgbm

    from mle_runtime import ops

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(X[:, :4], columns=list("abcd"))
    frame["kind"] = pd.Categorical(rng.integers(0, 6, len(frame)))
    target = (y + (frame["kind"].cat.codes.to_numpy() % 2)) % 2
    models = [lightgbm.LGBMClassifier(n_estimators=n, verbose=-1, random_state=n).fit(frame, target) for n in (6, 9)]
    merged = []
    stacked_form = ops.stacked_form("TreeEnsemble")
    monkeypatch.setitem(
        ops._STACKED, ("TreeEnsemble", 1), lambda *a, **k: merged.append(stacked_form(*a, **k)) or merged[-1]
    )
    paths = _export_all(models, tmp_path, "lgb")
    test = frame.copy()
    test.loc[::7, "kind"] = np.nan
    got = mle.stack(paths).predict_proba(test)
    assert merged and all(m is not None for m in merged)
    for i, model in enumerate(models):
        np.testing.assert_allclose(got[i], model.predict_proba(test), rtol=1e-5, atol=1e-7)


def test_models_without_parameters_answer_once_each(tmp_path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    paths = _export_all([FunctionTransformer(np.log1p).fit(np.abs(X))] * 3, tmp_path, "f")
    stacked = mle.stack(paths)
    (out,) = stacked.run([np.abs(X[:20])])
    assert out.shape == (3, 20, X.shape[1])
    np.testing.assert_allclose(out, np.broadcast_to(np.log1p(np.abs(X[:20])), out.shape), rtol=1e-6)
    fn, params = stacked.as_jax()
    assert fn(params, np.abs(X[:20]).astype(np.float32))["transformed"].shape == (3, 20, X.shape[1])


def test_models_with_different_classes_decode_their_own(tmp_path) -> None:
    names = np.array(["ant", "bee", "cat"])
    a = LogisticRegression().fit(X, names[y])
    b = LogisticRegression().fit(X, np.where(y == 1, "yes", "no"))
    paths = _export_all([a, b], tmp_path, "cls")
    labels, _ = mle.stack(paths).run([X[:20]])
    np.testing.assert_array_equal(labels[0], a.predict(X[:20]))
    np.testing.assert_array_equal(labels[1], b.predict(X[:20]))


def test_as_jax_vmaps_the_parameters(tmp_path) -> None:
    paths = _export_all([LogisticRegression(C=c).fit(X, y) for c in (0.1, 1.0, 10.0)], tmp_path, "j")
    stacked = mle.stack(paths)
    fn, params = stacked.as_jax()
    assert params[next(iter(params))].shape[0] == 3
    out = jax.jit(fn)(params, X[:10].astype(np.float32))
    np.testing.assert_allclose(np.asarray(out["probabilities"]), stacked.run([X[:10]])[1], rtol=1e-6)


def test_structures_that_differ_are_refused_by_what_differs(tmp_path) -> None:
    logistic, ridge = LogisticRegression().fit(X, y), Ridge().fit(X, y)
    paths = _export_all([logistic, ridge], tmp_path, "mixed")
    with pytest.raises(ValueError, match="model 1 cannot stack with model 0"):
        mle.stack(paths)
    nets = [_mlp((h,), 0) for h in (8, 12)]
    with pytest.raises(ValueError, match=r"tensor '\w+' differs across the models"):
        mle.stack(_export_all(nets, tmp_path, "widths"))
    with pytest.raises(ValueError, match="non-empty list"):
        mle.stack([])
    stacked = mle.stack(paths[:1])
    with pytest.raises(ValueError, match="per-model input needs 1 slices, got 2"):
        stacked.run([np.stack([X, X])])


def test_models_whose_string_columns_differ_are_refused(tmp_path) -> None:
    """The stack codes strings once, with model 0's vocabulary: models that saw other categories (here as
    many, so that every tensor has the same shape) would get another category's code."""
    rng = np.random.default_rng(0)
    models = []
    for seen in (["a", "b"], ["a", "c"]):
        df = pd.DataFrame({"c": rng.choice(seen, 200), "x": rng.normal(size=200)})
        encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["c"]), remainder="passthrough")
        models.append(make_pipeline(encode, LogisticRegression()).fit(df, (df["c"] == seen[1]) ^ (df["x"] > 0)))
    paths = _export_all(models, tmp_path, "vocabularies")
    with pytest.raises(ValueError, match=r"string columns differ \(column 0: categories \['b', 'c'\]"):
        mle.stack(paths)
    same = _export_all([models[0], models[0]], tmp_path, "same")
    test = pd.DataFrame({"c": ["a", "b", "c"], "x": [-1.0, 0.0, 1.0]})
    np.testing.assert_allclose(mle.stack(same).predict_proba(test)[1], models[0].predict_proba(test), rtol=1e-5)


def test_text_models_stack_on_one_vocabulary(tmp_path) -> None:
    """A sweep of classifiers on one fitted vocabulary stacks, documents in; models whose vocabularies
    differ (here of one size, so every tensor has the same shape) are refused."""
    rng = np.random.default_rng(1)
    words = ["red", "green", "blue", "fast", "slow", "big", "small", "the"]
    docs = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(300)]
    labels = np.array([("red" in d) ^ ("fast" in d) for d in docs])
    models = [
        make_pipeline(TfidfVectorizer(vocabulary=words), LogisticRegression(C=c)).fit(docs, labels)
        for c in (0.1, 1.0, 10.0)
    ]
    stacked = mle.stack(_export_all(models, tmp_path, "sweep"))
    proba = stacked.predict_proba(docs[:50])
    for i, model in enumerate(models):
        np.testing.assert_allclose(proba[i], model.predict_proba(docs[:50]), rtol=0, atol=1e-6)
    other = make_pipeline(TfidfVectorizer(vocabulary=words[::-1]), LogisticRegression()).fit(docs, labels)
    with pytest.raises(ValueError, match="text features differ"):
        mle.stack(_export_all([models[0], other], tmp_path, "vocabularies"))


def test_mle_stack_stays_the_function_after_its_module_is_imported() -> None:
    code = (
        "import mle_runtime as mle\n"
        "from mle_runtime.model_stack import ModelStack\n"
        "import mle_runtime.batch, mle_runtime.runtime\n"
        "assert callable(mle.stack) and mle.ModelStack is ModelStack, mle.stack\n"
        "assert callable(mle.predict_file) and callable(mle.load_model)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_stacks_forest_is_walked_in_chunks_of_bounded_pairs_on_a_gpu() -> None:
    """A GPU walks a batch bucket at once, but a stack's forest of every model's trees in chunks of at
    most GPU_MAX_PAIRS (tree, row) pairs (the arithmetic only: the walk itself runs in the GPU checks)."""
    from mle_runtime.ops import lowering_for, trees

    with lowering_for("gpu"):
        assert trees._chunk_rows(100_000, trees=500) == trees.GPU_CHUNK_ROWS  # one model's forest: unchanged
        rows = trees._chunk_rows(100_000, trees=50 * 1_000)
        assert rows * 50_000 <= trees.GPU_MAX_PAIRS < 2 * rows * 50_000
        assert trees._chunk_rows(100, trees=10**9) == 100
    assert trees._chunk_rows(100_000, trees=50_000) == trees.CHUNK_ROWS
