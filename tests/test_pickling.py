"""A runtime, or a stack, pickles with its model file's bytes and loads again in another process."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import mle_runtime as mle
from mle_runtime.security import SecurityUtils


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(300, 6, random_state=0)


def test_a_pickled_runtime_answers_in_another_process_without_its_file(data, tmp_path: Path) -> None:
    X, y = data
    model = RandomForestClassifier(10, random_state=0).fit(X, y)
    path = tmp_path / "rf.mle"
    mle.export_model(model, path)
    runtime = mle.load_model(path, precision="float64", check_inputs=False)
    (tmp_path / "rf.pkl").write_bytes(pickle.dumps(runtime))
    np.save(tmp_path / "X.npy", X)
    path.unlink()
    script = (
        "import pickle, sys, numpy as np; from pathlib import Path; d = Path(sys.argv[1]); "
        "r = pickle.loads((d / 'rf.pkl').read_bytes()); "
        "np.save(d / 'out.npy', r.predict_proba(np.load(d / 'X.npy'))); "
        "print(r.precision, r.predict_proba(np.full((1, 6), np.nan)).shape)"
    )
    env = {**os.environ, "MLE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["float64", "(1,", "2)"]  # (check_inputs=False travelled: NaN let through)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model.predict_proba(X), rtol=1e-12, atol=1e-12)
    assert len(list((tmp_path / "cache" / "pickled").glob("*.mle"))) == 1


def test_copies_and_stacks(data, tmp_path: Path) -> None:
    X, y = data
    models = [LogisticRegression(C=c).fit(X, y) for c in (0.1, 1.0)]
    for i, m in enumerate(models):
        mle.export_model(m, tmp_path / f"{i}.mle")
    runtime = mle.load_model(tmp_path / "0.mle", cache_dir=tmp_path / "cache")
    clone = copy.deepcopy(runtime)
    np.testing.assert_array_equal(clone.predict(X), models[0].predict(X))
    assert clone.cache_dir == tmp_path / "cache"
    stacked = pickle.loads(pickle.dumps(mle.stack([tmp_path / "0.mle", tmp_path / "1.mle"])))
    for i, m in enumerate(models):
        np.testing.assert_allclose(stacked.predict_proba(X)[i], m.predict_proba(X), rtol=1e-5, atol=1e-6)
    empty = pickle.loads(pickle.dumps(mle.MLERuntime(device="cpu", precision="float64")))
    assert empty.precision == "float64"
    with pytest.raises(RuntimeError, match="no model loaded"):
        empty.predict(X)


def test_a_file_changed_since_the_load_is_not_pickled(data, tmp_path: Path) -> None:
    X, y = data
    path = tmp_path / "m.mle"
    mle.export_model(LogisticRegression().fit(X, y), path)
    runtime = mle.load_model(path)
    mle.export_model(LogisticRegression(C=0.01).fit(X, y), path)
    with pytest.raises(RuntimeError, match="changed since this runtime loaded it"):
        pickle.dumps(runtime)


def test_signed_and_encrypted_models(data, tmp_path: Path) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    public, private = SecurityUtils.generate_keypair()
    mle.export_model(model, tmp_path / "signed.mle", private_key=private)
    signed = pickle.loads(pickle.dumps(mle.load_model(tmp_path / "signed.mle", public_key=public)))
    np.testing.assert_array_equal(signed.predict(X), model.predict(X))
    assert signed.get_model_info()["signature"]["verified"]
    key = bytes(range(32))
    mle.export_model(model, tmp_path / "secret.mle", encryption_key=key)
    with pytest.raises(TypeError, match="encrypted model is not pickled"):
        pickle.dumps(mle.load_model(tmp_path / "secret.mle", decryption_key=key))
