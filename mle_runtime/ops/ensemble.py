"""Combining the outputs of several models: the meta-estimators (voting, bagging, boosting, stacking,
one-vs-rest, multi-output) add their parts' outputs in the order and form scikit-learn does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.ops import register_op
from mle_runtime.ops.math import divide, mean, pair


@register_op("OneHot")
def one_hot(index: jax.Array, *, n: int) -> jax.Array:
    """(rows, n) floats: 1 at each row's index."""
    return jax.nn.one_hot(index.astype(jnp.int32), n, dtype=jnp.result_type(float))


@register_op("ExpandLast")
def expand_last(x: jax.Array) -> jax.Array:
    """x with a last axis of size 1: (rows,) -> (rows, 1)."""
    return x[..., None]


@register_op("WeightedSum")
def weighted_sum(*xs: jax.Array, weights: list[float], divisor: float = 1.0) -> jax.Array:
    """(w_0 x_0 + w_1 x_1 + ...) / divisor, added in order (numpy's average and scikit-learn's running
    sums add them in that order)."""
    if len(weights) != len(xs):
        raise ValueError(f"WeightedSum: {len(weights)} weights for {len(xs)} inputs")
    total = xs[0] * weights[0]
    for w, x in zip(weights[1:], xs[1:], strict=True):
        total = total + x * w
    return divide(total, divisor)


@register_op("SammeDecision")
def samme_decision(*labels: jax.Array, weights: list[float], n_classes: int) -> jax.Array:
    """AdaBoostClassifier's decision_function from its estimators' predicted class indices: each adds
    its weight w to its class and -w / (k - 1) to the others; divided by the weights' sum; for two
    classes, column 1 minus column 0."""
    classes = jnp.arange(n_classes)
    pred = None
    for label, w in zip(labels, weights, strict=True):
        vote = jnp.where(label[:, None] == classes[None, :], w, -1 / (n_classes - 1) * w)
        pred = vote if pred is None else pred + vote
    assert pred is not None
    pred = divide(pred, sum(weights))
    if n_classes == 2:
        return pred[:, 1] - pred[:, 0]
    return pred


@register_op("SammeProba")
def samme_proba(decision: jax.Array, *, n_classes: int) -> jax.Array:
    """AdaBoostClassifier's predict_proba: softmax(decision / (k - 1)), or of [-d, d] / 2 for two classes."""
    scaled = pair(-decision, decision) / 2 if n_classes == 2 else decision / (n_classes - 1)
    return jax.nn.softmax(scaled, axis=-1)


@register_op("WeightedMedian")
def weighted_median(weights: jax.Array, *predictions: jax.Array) -> jax.Array:
    """AdaBoostRegressor's prediction: per row, the prediction at which the estimators' weights, in the
    order of their predictions (a stable sort), first reach half their total."""
    preds = jnp.stack(predictions, axis=1)
    order = jnp.argsort(preds, axis=1, stable=True)
    cdf = jnp.cumsum(weights[order], axis=1)
    median = jnp.argmax(cdf >= 0.5 * cdf[:, -1:], axis=1)
    chosen = jnp.take_along_axis(order, median[:, None], axis=1)
    return jnp.take_along_axis(preds, chosen, axis=1)[:, 0]


# scikit-learn clips an init estimator's probabilities to [eps, 1 - eps], float64's eps
_INIT_EPS = float(np.finfo(np.float64).eps)


@register_op("GradientBoostingInit")
def gradient_boosting_init(values: jax.Array, *, link: str) -> jax.Array:
    """A GradientBoosting model's initial raw predictions, (rows, K), from its init estimator's output as
    scikit-learn's ``_init_raw_predictions`` forms them: a regressor's predictions as they are ("identity");
    a classifier's probabilities clipped to [eps, 1 - eps], then the second class's logit ("logit"), half
    of it ("half_logit", the exponential loss), or each class's log over the row's geometric mean
    ("multinomial_logit")."""
    if link == "identity":
        return values.reshape(values.shape[0], -1)
    p = jnp.clip(values, _INIT_EPS, 1.0 - _INIT_EPS)
    if link == "multinomial_logit":
        geometric_mean = jnp.exp(mean(jnp.log(p), axis=1))
        return jnp.log(divide(p, geometric_mean[:, None]))
    if link not in ("logit", "half_logit"):
        raise ValueError(f"GradientBoostingInit: unknown link {link!r}")
    positive = p[:, 1]
    # float64: 1 - p as scikit-learn computes it; float32 would round a p within 6e-8 of 1 to 1 (a logit
    # of 36 for 17), so there the other class's probability, which a binary predict_proba holds exactly
    negative = 1.0 - positive if p.dtype == jnp.float64 else p[:, 0]
    logit = jnp.log(positive / negative)
    return (logit if link == "logit" else 0.5 * logit)[:, None]
