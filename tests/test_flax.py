"""as_flax(): a converted network fine-tuned with optax in flax.nnx, then exported back to .mle."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from sklearn.linear_model import LogisticRegression

import mle_runtime as mle


def _torch_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).eval()


def test_fine_tune_a_torch_network_and_export_it(tmp_path) -> None:
    net = _torch_net()
    path = tmp_path / "net.mle"
    mle.export_model(net, path, input_shape=(1, 4))
    runtime = mle.load_model(path)
    module = runtime.as_flax()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    target = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    (output,) = runtime._run_outputs()
    before = module(jnp.asarray(x))[output]
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(before), net(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)

    optimizer = nnx.Optimizer(module, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(module, optimizer, x, target):
        def loss(m):
            return jnp.mean((m(x)[output] - target) ** 2)

        value, grads = nnx.value_and_grad(loss)(module)
        optimizer.update(module, grads)
        return value

    losses = [float(step(module, optimizer, jnp.asarray(x), jnp.asarray(target))) for _ in range(150)]
    assert losses[-1] < 0.5 * losses[0]

    tuned = tmp_path / "tuned.mle"
    module.export(tuned)
    reloaded = mle.load_model(tuned)
    assert reloaded.get_model_info()["metadata"]["fine_tuned"] is True
    after = reloaded.run([x])[0]
    np.testing.assert_allclose(after, np.asarray(module(jnp.asarray(x))[output]), rtol=1e-6, atol=1e-6)
    assert np.abs(after - np.asarray(before)).max() > 1e-3  # the weights did change
    assert np.mean((after - target) ** 2) < np.mean((np.asarray(before) - target) ** 2)


def test_untouched_tensors_are_written_back_as_stored(tmp_path) -> None:
    """A float64 scikit-learn model loaded in float32: exporting without training keeps the float64 weights."""
    X = np.random.default_rng(1).normal(size=(200, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    mle.export_model(model, tmp_path / "lr.mle")
    module = mle.load_model(tmp_path / "lr.mle").as_flax()
    assert all(isinstance(v, nnx.Param) for v in module.weights.values())
    module.export(tmp_path / "again.mle")
    again = mle.load_model(tmp_path / "again.mle", precision="float64")
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="unexpected options"):
        module.export(tmp_path / "x.mle", level=3)
