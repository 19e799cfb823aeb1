"""The float32 copy of a large float64 model is kept once per file version and mapped by later loads;
a changed model, a damaged or foreign copy, or cache=False never lets a stale copy answer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

import mle_runtime as mle
from mle_runtime import cast_cache, verified
from mle_runtime.cache import SIBLING_DIR, user_cache_dir

X = np.random.default_rng(0).normal(size=(400, 700))
ROWS = X[:50].astype(np.float32)


def _fit(seed: int) -> PCA:
    return PCA(400, svd_solver="randomized", random_state=seed).fit(X + seed)


@pytest.fixture
def private_cache(tmp_path) -> Path:
    """The cache folder beside models exported into tmp_path."""
    return tmp_path / SIBLING_DIR


def _load(path: Path, **kwargs) -> tuple[np.ndarray, str]:
    runtime = mle.load_model(path, **kwargs)
    return runtime.run([ROWS])[0], runtime.get_model_info()["cache"]["parameters"]


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.cast")) if folder.exists() else []


def test_a_later_load_maps_the_cast_copy(tmp_path, private_cache) -> None:
    model = _fit(0)
    path = tmp_path / "pca.mle"
    mle.export_model(model, path)
    first, how = _load(path)
    assert how == cast_cache.WRITTEN
    [entry] = _entries(private_cache)
    assert entry.stat().st_size > cast_cache.MIN_BYTES
    again, how = _load(path)
    assert how == cast_cache.MAPPED
    uncached, how = _load(path, cache=False)
    assert how == cast_cache.CAST
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(again, uncached)
    np.testing.assert_allclose(again, model.transform(ROWS.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_a_model_exported_again_under_the_same_name_never_gets_the_old_copy(tmp_path, private_cache) -> None:
    path = tmp_path / "pca.mle"
    mle.export_model(_fit(0), path)
    _load(path)
    newer = _fit(1)
    mle.export_model(newer, path)
    out, how = _load(path)
    assert how == cast_cache.WRITTEN
    assert len(_entries(private_cache)) == 2
    np.testing.assert_allclose(out, newer.transform(ROWS.astype(np.float64)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncated", "header", "writable by others"])
def test_a_damaged_or_exposed_copy_is_ignored_and_written_again(tmp_path, private_cache, damage) -> None:
    path = tmp_path / "pca.mle"
    mle.export_model(_fit(0), path)
    expected, _ = _load(path, cache=False)
    _load(path)
    [entry] = _entries(private_cache)
    if damage == "truncated":
        os.truncate(entry, entry.stat().st_size - 64)
    elif damage == "header":
        with open(entry, "r+b") as f:
            f.write(b"XXXXXXXX")
    else:
        entry.chmod(0o666)
    out, how = _load(path)
    assert how == cast_cache.WRITTEN
    np.testing.assert_array_equal(out, expected)
    assert entry.stat().st_mode & 0o022 == 0
    assert _load(path)[1] == cast_cache.MAPPED


def test_cache_false_keeps_nothing(tmp_path, private_cache) -> None:
    path = tmp_path / "pca.mle"
    mle.export_model(_fit(0), path)
    assert _load(path, cache=False)[1] == cast_cache.CAST
    assert _entries(private_cache) == []


def test_a_folder_that_cannot_be_written_falls_back_to_the_user_cache_then_to_casting(tmp_path) -> None:
    (tmp_path / SIBLING_DIR).write_text("")  # the model's folder cannot take a cache folder
    path = tmp_path / "pca.mle"
    mle.export_model(_fit(0), path)
    expected, _ = _load(path, cache=False)
    before = set(_entries(user_cache_dir()))
    assert _load(path)[1] == cast_cache.WRITTEN
    assert len(set(_entries(user_cache_dir())) - before) == 1
    out, how = _load(path)
    assert how == cast_cache.MAPPED
    np.testing.assert_array_equal(out, expected)
    out, how = _load(path, cache_dir=tmp_path / SIBLING_DIR / "nowhere")
    assert how == cast_cache.CAST
    np.testing.assert_array_equal(out, expected)


def test_a_file_changed_too_recently_to_be_recognised_is_not_kept(tmp_path, private_cache, monkeypatch) -> None:
    exported = tmp_path / "pca.mle"
    mle.export_model(_fit(0), exported)
    copy = tmp_path / "copy.mle"
    shutil.copyfile(exported, copy)  # fresh times, and no record of this process having written it
    assert _load(copy)[1] == cast_cache.CAST
    assert _entries(private_cache) == []
    monkeypatch.setattr(verified, "RACY_SECONDS", -1e9)  # as if the clock had moved on
    assert _load(copy)[1] == cast_cache.WRITTEN


def test_small_or_float32_models_get_no_copy(tmp_path, private_cache) -> None:
    small = tmp_path / "small.mle"
    mle.export_model(PCA(5).fit(X[:, :20]), small)
    assert _load_small(small) == cast_cache.CAST
    assert _load_small(small, precision="float64") == cast_cache.AS_STORED
    assert _entries(private_cache) == []


def _load_small(path: Path, **kwargs) -> str:
    runtime = mle.load_model(path, **kwargs)
    runtime.run([X[:3, :20]])
    return runtime.get_model_info()["cache"]["parameters"]


def test_the_copy_is_named_by_the_local_secret(tmp_path, private_cache, monkeypatch) -> None:
    path = tmp_path / "pca.mle"
    mle.export_model(_fit(0), path)
    _load(path)
    monkeypatch.setattr(verified, "RACY_SECONDS", -1e9)  # the writer's record is keyed by the old secret too
    monkeypatch.setattr(verified, "hmac_key", lambda: b"\x01" * 32)
    assert _load(path)[1] == cast_cache.WRITTEN
    assert len(_entries(private_cache)) == 2
    monkeypatch.setattr(verified, "hmac_key", lambda: None)
    assert _load(path)[1] == cast_cache.CAST
    assert len(_entries(private_cache)) == 2
