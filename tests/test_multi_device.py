"""load_model(..., devices=N): batches split across local devices (data parallel), answers equal to one
device. Run in a subprocess where XLA shows the CPU as four devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

import mle_runtime as mle
from mle_runtime.errors import DeviceError

X, y = make_classification(2_000, 6, n_informative=4, random_state=0)

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mle_runtime as mle

    path, data = sys.argv[1], np.load(sys.argv[2])
    one = mle.load_model(path)
    four = mle.load_model(path, devices=4)
    report = {"devices": four.get_model_info()["devices"], "equal": [], "spans": []}
    for n in (1, 7, 1000, 2000, 9000):
        rows = np.resize(data, (n, data.shape[1]))
        a, b = one.run([rows]), four.run([rows])
        report["equal"].append(all(np.array_equal(u, v) for u, v in zip(a, b)))
    for compiled in four._executables.values():
        report["spans"].append(max(len(s.device_set) for s in compiled.input_shardings[0][1]))
    print(json.dumps(report))
    """
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression().fit(X, y),
        lambda: RandomForestClassifier(8, max_depth=6, random_state=0).fit(X, y),
        lambda: MLPClassifier((16,), max_iter=300, random_state=0).fit(X, y),
    ],
    ids=["linear", "forest", "mlp"],
)
def test_four_devices_answer_as_one(tmp_path: Path, make) -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make()
    mle.export_model(model, tmp_path / "m.mle")
    np.save(tmp_path / "x.npy", X)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "m.mle"), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
    assert all(report["equal"])
    assert report["spans"] and set(report["spans"]) == {4}


def test_bad_device_lists_are_device_errors(tmp_path: Path) -> None:
    mle.export_model(LogisticRegression().fit(X, y), tmp_path / "m.mle")
    with pytest.raises(DeviceError, match="1 cpu device"):
        mle.load_model(tmp_path / "m.mle", devices=2)
    with pytest.raises(DeviceError, match="devices must be"):
        mle.load_model(tmp_path / "m.mle", devices="most")
    with pytest.raises(DeviceError, match="twice"):
        mle.load_model(tmp_path / "m.mle", devices=["cpu:0", "cpu:0"])
    one = mle.load_model(tmp_path / "m.mle", devices=1)
    np.testing.assert_array_equal(one.predict(X), LogisticRegression().fit(X, y).predict(X))
