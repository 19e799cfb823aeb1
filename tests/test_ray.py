"""MLEPredictor: the model once per Ray worker, run on Ray Data batches; equal to a single-process run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

import mle_runtime as mle
from mle_runtime.ray_predictor import MLEPredictor

X, y = make_classification(3_000, 5, n_informative=3, random_state=0)
COLUMNS = [f"f{i}" for i in range(X.shape[1])]
FRAME = pd.DataFrame(X, columns=COLUMNS)
MODEL = RandomForestClassifier(10, max_depth=6, random_state=0).fit(FRAME, y)  # feature names recorded


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray") / "forest.mle"
    mle.export_model(MODEL, path)
    return path


def test_predictor_on_numpy_and_pandas_batches(model_path) -> None:
    predictor = MLEPredictor(model_path)
    batch = {"id": np.arange(10), **{c: X[:10, i] for i, c in enumerate(COLUMNS)}}
    out = predictor(batch)
    assert list(out) == ["id", *COLUMNS, "label", "probabilities_0", "probabilities_1"]
    np.testing.assert_array_equal(out["label"], MODEL.predict(FRAME[:10]))
    frame_out = MLEPredictor(model_path, outputs=["probabilities"], keep_columns=False)(FRAME[:10])
    assert list(frame_out.columns) == ["probabilities_0", "probabilities_1"]
    np.testing.assert_allclose(frame_out.to_numpy(), MODEL.predict_proba(FRAME[:10]), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="lacks the model's feature columns"):
        predictor({"f0": X[:3, 0]})
    with pytest.raises(ValueError, match="unknown outputs"):
        MLEPredictor(model_path, outputs=["nope"])


CLUSTER_JOB = textwrap.dedent(
    """
    import sys
    import ray  # started before JAX is imported: ray.init forks, and JAX warns of forks once it runs threads

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    import pandas as pd
    from mle_runtime.ray_predictor import MLEPredictor

    try:
        scored = ray.data.from_pandas(pd.read_parquet(sys.argv[2])).map_batches(
            MLEPredictor,
            fn_constructor_kwargs={"model_path": sys.argv[1]},
            concurrency=2,
            batch_size=500,
            batch_format="numpy",
        ).to_pandas()
    finally:
        ray.shutdown()
    scored.to_parquet(sys.argv[3])
    """
)


def test_map_batches_on_a_local_ray_cluster(model_path, tmp_path) -> None:
    FRAME.assign(row=np.arange(len(FRAME))).to_parquet(tmp_path / "in.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CLUSTER_JOB,
            str(model_path),
            str(tmp_path / "in.parquet"),
            str(tmp_path / "out.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scored = pd.read_parquet(tmp_path / "out.parquet").sort_values("row").reset_index(drop=True)
    assert len(scored) == len(FRAME)
    single = mle.load_model(model_path).run([FRAME])
    np.testing.assert_array_equal(scored["label"].to_numpy(), single[0])
    np.testing.assert_array_equal(scored[["probabilities_0", "probabilities_1"]].to_numpy(), single[1])
    np.testing.assert_array_equal(scored["label"].to_numpy(), MODEL.predict(FRAME))
