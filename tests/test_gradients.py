"""as_jax() of differentiable models: jax.grad through the converted function agrees with the source
framework's own gradient (torch autograd, Keras' GradientTape) or with central finite differences of the
framework's predictions."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

import mle_runtime as mle

Xc, yc = make_classification(300, 6, n_informative=4, random_state=0)
Xr, yr = make_regression(300, 6, noise=5.0, random_state=0)
yr_positive = np.exp(yr / yr.std())


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# (model, data, output name in the graph, the framework's function of one row for finite differences)
CASES = {
    "linear regression": (lambda: _fit(LinearRegression(), Xr, yr), Xr, "predictions", "predict"),
    "ridge in a pipeline": (
        lambda: _fit(make_pipeline(StandardScaler(), Ridge()), Xr, yr),
        Xr,
        "predictions",
        "predict",
    ),
    "poisson GLM": (lambda: _fit(PoissonRegressor(), Xr, yr_positive), Xr, "predictions", "predict"),
    "logistic probabilities": (lambda: _fit(LogisticRegression(), Xc, yc), Xc, "probabilities", "predict_proba"),
    "SVC decision function": (lambda: _fit(SVC(), Xc, yc), Xc, "decision", "decision_function"),
    "SVR": (lambda: _fit(SVR(), Xr, yr / yr.std()), Xr, "predictions", "predict"),
    "MLP classifier": (
        lambda: _fit(MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, random_state=0), Xc, yc),
        Xc,
        "probabilities",
        "predict_proba",
    ),
    "MLP regressor (tanh)": (
        lambda: _fit(_tanh_mlp(), Xr, yr / yr.std()),
        Xr,
        "predictions",
        "predict",
    ),
}


def _tanh_mlp() -> MLPRegressor:
    return MLPRegressor(hidden_layer_sizes=(12, 8), activation="tanh", max_iter=300, random_state=0)


def _finite_difference(f, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    grad = np.zeros_like(x)
    for j in range(x.size):
        step = np.zeros_like(x)
        step.flat[j] = eps
        grad.flat[j] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", list(CASES))
def test_input_gradients_match_the_framework(tmp_path, case) -> None:
    make, X, output, method = CASES[case]
    model = make()
    path = tmp_path / "m.mle"
    mle.export_model(model, path)
    fn, params = mle.load_model(path, precision="float64").as_jax()
    rows = X[:4]

    def ours(x):
        return jnp.sum(fn(params, x[None])[output][0] * weights)

    width = np.atleast_2d(getattr(model, method)(rows[:1])).shape[1]
    weights = np.linspace(1.0, 2.0, width) if width > 1 else np.float64(1.0)
    with jax.enable_x64(True):
        for row in rows:
            got = np.asarray(jax.grad(ours)(jnp.asarray(row)))

            def framework(x):
                return float(np.sum(np.atleast_2d(getattr(model, method)(x[None])).reshape(-1) * weights))

            want = _finite_difference(framework, row)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(want).max()))


def test_parameter_gradients_of_a_linear_model(tmp_path) -> None:
    """Gradients with respect to the parameters: a least-squares step on Ridge's weights."""
    model = Ridge().fit(Xr, yr)
    mle.export_model(model, tmp_path / "r.mle")
    fn, params = mle.load_model(tmp_path / "r.mle", precision="float64").as_jax()
    with jax.enable_x64(True):

        def loss(p):
            return jnp.mean((fn(p, jnp.asarray(Xr))["predictions"] - yr) ** 2)

        grads = jax.grad(loss)(params)
        residual = model.predict(Xr) - yr
        coef_name = next(n for n, a in params.items() if a.shape == (6,) or a.shape == (6, 1))
        expected = 2 * Xr.T @ residual / len(Xr)
        np.testing.assert_allclose(np.asarray(grads[coef_name]).reshape(-1), expected, rtol=1e-6, atol=1e-6)


def test_torch_network_gradients_match_autograd(tmp_path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(2, 4, 3), torch.nn.GELU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6, 3), torch.nn.Softmax(-1)
    ).eval()
    path = tmp_path / "net.mle"
    mle.export_model(net, path, input_shape=(1, 2, 8))
    fn, params = mle.load_model(path).as_jax()
    x = np.random.default_rng(0).normal(size=(5, 2, 8)).astype(np.float32)
    weights = np.array([1.0, -2.0, 0.5], np.float32)
    output = next(iter(fn(params, jnp.asarray(x))))
    got = np.asarray(jax.grad(lambda v: jnp.sum(fn(params, v)[output] * weights))(jnp.asarray(x)))
    tx = torch.tensor(x, requires_grad=True)
    (net(tx) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_keras_network_gradients_match_gradient_tape(tmp_path) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="swish"), keras.layers.Dense(2, activation="sigmoid")]
    )
    path = tmp_path / "k.mle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Keras' saving code under numpy 2
        mle.export_model(model, path)
    fn, params = mle.load_model(path).as_jax()
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    output = next(iter(fn(params, jnp.asarray(x))))
    got = np.asarray(jax.grad(lambda v: jnp.sum(fn(params, v)[output]))(jnp.asarray(x)))
    tx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        total = tf.reduce_sum(model(tx))
    np.testing.assert_allclose(got, tape.gradient(total, tx).numpy(), rtol=1e-4, atol=1e-6)
