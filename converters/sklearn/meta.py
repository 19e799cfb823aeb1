"""Meta-estimators, composed from the converters of their parts (whatever those are, trees included):
voting, stacking, bagging, AdaBoost, calibration, one-vs-rest and one-vs-one, multi-output and chains,
target-transformed regression.

A part's ``label`` output is the index of its class in the part's own ``classes_``; meta-estimators
that encode their targets (voting, stacking, bagging) fit their parts on class indices, so a part's
class value is the meta-estimator's class index."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import calibration, compose, ensemble, multiclass, multioutput

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.converters.sklearn import preprocessing as preprocessing_converters
from mle_runtime.converters.sklearn.encoders import ufunc_name
from mle_runtime.errors import UnsupportedModelError


def _part(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    from mle_runtime.converters.sklearn import convert_step

    return convert_step(est, b, x, n_features)


def _output(part: Converted, role: str, owner: Any) -> str:
    if role not in part.outputs:
        raise UnsupportedModelError(f"{type(owner).__name__}: a part has no {role} output ({sorted(part.outputs)})")
    return part.outputs[role]


def _widen(b: GraphBuilder, columns: str, part_classes: np.ndarray, n_classes: int) -> str:
    """A part's per-class columns placed at the meta-estimator's class indices (a part that never saw
    some class lacks its column): one product with a 0/1 matrix, exact."""
    part_classes = np.asarray(part_classes).astype(np.int64)
    if np.array_equal(part_classes, np.arange(n_classes)):
        return columns
    placement = np.zeros((len(part_classes), n_classes))
    placement[np.arange(len(part_classes)), part_classes] = 1.0
    return b.op("Gemm", columns, b.const("class_placement", placement))


def _columns(b: GraphBuilder, values: str, index: Any) -> str:
    """``values[:, index]``: a list keeps the axis ((rows, len)), a single int drops it ((rows,))."""
    return b.op("TakeColumns", values, b.const("columns", np.asarray(index, dtype=np.int32)))


def _side_by_side(b: GraphBuilder, columns: list[str]) -> str:
    return columns[0] if len(columns) == 1 else b.op("Concat", *columns)


@converts(ensemble.VotingClassifier)
def voting_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    weights = [1.0] * len(est.estimators_) if est.weights is None else [float(w) for w in est._weights_not_none]
    parts = [_part(e, b, x, n_features) for e in est.estimators_]
    k = len(est.classes_)
    if est.voting == "soft":
        probas = [
            _widen(b, _output(p, "probabilities", est), e.classes_, k)
            for p, e in zip(parts, est.estimators_, strict=True)
        ]
        proba = b.op("WeightedSum", *probas, weights=weights, divisor=float(sum(weights)))
        outputs = {"label": b.op("ArgMax", proba), "probabilities": proba}
        return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))
    # hard: the weighted count of each class among the parts' predictions (np.bincount), first max wins
    votes = [
        _widen(b, b.op("OneHot", _output(p, "label", est), n=len(e.classes_)), e.classes_, k)
        for p, e in zip(parts, est.estimators_, strict=True)
    ]
    counts = b.op("WeightedSum", *votes, weights=weights)
    return Converted("classifier", {"label": b.op("ArgMax", counts)}, ["label"], classes=np.asarray(est.classes_))


@converts(ensemble.VotingRegressor)
def voting_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    weights = [1.0] * len(est.estimators_) if est.weights is None else [float(w) for w in est._weights_not_none]
    predictions = [_output(_part(e, b, x, n_features), "predictions", est) for e in est.estimators_]
    y = b.op("WeightedSum", *predictions, weights=weights, divisor=float(sum(weights)))
    return Converted("regressor", {"predictions": y}, ["predictions"])


def _stack_features(est: Any, b: GraphBuilder, x: str, n_features: int, classifier: bool) -> tuple[str, int]:
    """The final estimator's input: each part's stack_method output as columns (a binary classifier's
    probabilities without their first column, a classifier's predicted class index), then X with
    passthrough."""
    columns, width = [], 0
    binary = classifier and len(est.classes_) == 2
    for e, method in zip(est.estimators_, est.stack_method_, strict=True):
        if e == "drop":
            continue
        part = _part(e, b, x, n_features)
        role = {"predict_proba": "probabilities", "decision_function": "decision", "predict": "predictions"}[method]
        if method == "predict" and classifier:
            # its parts learnt the label-encoded target: a label is its class index, as a number
            if not np.array_equal(np.asarray(e.classes_), np.arange(len(e.classes_))):
                raise UnsupportedModelError(f"{type(est).__name__}: stack_method 'predict' on a multilabel target")
            values = b.op("ExpandLast", b.op("Cast", _output(part, "label", est), dtype="float"))
            columns.append(values)
            width += 1
            continue
        values = _output(part, role, est)
        if method == "predict_proba":
            n = len(e.classes_)
            if binary:
                values, n = _columns(b, values, [1]), 1
        elif method == "decision_function" and classifier and not binary:
            n = len(e.classes_)
        else:
            values, n = b.op("ExpandLast", values), 1
        columns.append(values)
        width += n
    if est.passthrough:
        columns.append(x)
        width += n_features
    return _side_by_side(b, columns), width


@converts(ensemble.StackingClassifier)
def stacking_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    features, width = _stack_features(est, b, x, n_features, classifier=True)
    final = _part(est.final_estimator_, b, features, width)
    outputs = {"label": final.outputs["label"]}
    for role in ("probabilities", "decision"):
        if role in final.outputs:
            outputs[role] = final.outputs[role]
    run = ["label", "probabilities" if "probabilities" in outputs else "decision"]
    return Converted("classifier", outputs, run, classes=np.asarray(est.classes_))


@converts(ensemble.StackingRegressor)
def stacking_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    features, width = _stack_features(est, b, x, n_features, classifier=False)
    final = _part(est.final_estimator_, b, features, width)
    return Converted("regressor", {"predictions": _output(final, "predictions", est)}, ["predictions"])


def _bagged_parts(est: Any, b: GraphBuilder, x: str) -> list[tuple[Any, Converted]]:
    parts = []
    for e, features in zip(est.estimators_, est.estimators_features_, strict=True):
        features = np.asarray(features, dtype=np.int32)
        if len(features) == est.n_features_in_ and np.array_equal(features, np.arange(len(features))):
            sub = x
        else:
            sub = b.op("TakeColumns", x, b.const("bagged_features", features))
        parts.append((e, _part(e, b, sub, len(features))))
    return parts


@converts(ensemble.BaggingClassifier)
def bagging_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The mean of the parts' probabilities (or, for parts without predict_proba, of their one-hot votes);
    where every part computes its log probabilities from its scores (naive Bayes, discriminant analysis) and
    saw every class, their log-mean-exp, as scikit-learn's predict_log_proba then computes it."""
    k = len(est.classes_)
    probas, decisions, logs = [], [], []
    for e, part in _bagged_parts(est, b, x):
        if "log_probabilities" in part.outputs and len(e.classes_) == k:
            logs.append(part.outputs["log_probabilities"])
        if hasattr(e, "predict_proba"):
            probas.append(_widen(b, _output(part, "probabilities", est), e.classes_, k))
        else:
            probas.append(_widen(b, b.op("OneHot", _output(part, "label", est), n=len(e.classes_)), e.classes_, k))
        if "decision" in part.outputs:
            decisions.append(part.outputs["decision"])
    n = len(probas)
    proba = b.op("WeightedSum", *probas, weights=[1.0] * n, divisor=float(n))
    outputs = {"label": b.op("ArgMax", proba), "probabilities": proba}
    if len(logs) == n:
        outputs["log_probabilities"] = b.op("LogMeanExp", *logs)
    if hasattr(est, "decision_function") and len(decisions) == n:
        outputs["decision"] = b.op("WeightedSum", *decisions, weights=[1.0] * n, divisor=float(n))
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


@converts(ensemble.BaggingRegressor)
def bagging_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    predictions = [_output(part, "predictions", est) for _, part in _bagged_parts(est, b, x)]
    n = len(predictions)
    y = b.op("WeightedSum", *predictions, weights=[1.0] * n, divisor=float(n))
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(ensemble.AdaBoostClassifier)
def adaboost_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """SAMME: each part's predicted class (mapped to the ensemble's class index) votes with its weight."""
    k = len(est.classes_)
    if k < 2:
        raise UnsupportedModelError("AdaBoostClassifier fitted on one class is not supported")
    labels = []
    for e in est.estimators_:
        label = _output(_part(e, b, x, n_features), "label", est)
        index = np.searchsorted(est.classes_, e.classes_)
        if not np.array_equal(index, np.arange(k)):  # a part that saw fewer classes: its index -> ours
            label = b.op("TakeColumns", b.const("class_index", index.astype(np.int32)), label)
        labels.append(label)
    weights = [float(w) for w in est.estimator_weights_[: len(labels)]]
    decision = b.op("SammeDecision", *labels, weights=weights, n_classes=k)
    label = b.op("IsPositive", decision) if k == 2 else b.op("ArgMax", decision)
    outputs = {"label": label, "decision": decision, "probabilities": b.op("SammeProba", decision, n_classes=k)}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


@converts(ensemble.AdaBoostRegressor)
def adaboost_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    predictions = [_output(_part(e, b, x, n_features), "predictions", est) for e in est.estimators_]
    weights = b.const("estimator_weights", est.estimator_weights_[: len(predictions)])
    y = b.op("WeightedMedian", weights, *predictions)
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(multiclass.OutputCodeClassifier)
def output_code(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each binary part's score (decision_function where it has one, else the second probability
    column), and the class whose code-book row is nearest to the scores (euclidean; the first of equals).
    scikit-learn gives predict only."""
    scores = []
    for e in est.estimators_:
        if type(e).__name__ == "_ConstantPredictor":  # a code column of one class: its value, every row
            scores.append(b.op("ConstantRows", x, b.const("constant_score", np.asarray(e.y_, np.float64).reshape(1))))
            continue
        part = _part(e, b, x, n_features)
        if hasattr(e, "decision_function"):
            scores.append(b.op("ExpandLast", _output(part, "decision", est)))
        else:
            scores.append(_columns(b, _output(part, "probabilities", est), [1]))
    code_book = b.const("code_book", np.asarray(est.code_book_, dtype=np.float64))
    distances = b.op("EuclideanDistances", _side_by_side(b, scores), code_book)
    label = b.op("ArgMax", b.op("Sub", b.const("zero", np.array(0.0)), distances))
    return Converted("classifier", {"label": label}, ["label"], classes=np.asarray(est.classes_))


@converts(multiclass.OneVsRestClassifier)
def one_vs_rest(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each class's binary part scores it (decision_function where the part has one, else the second
    probability column); the label is the best score. predict_proba: the parts' positive
    probabilities, normalized."""
    scores, positives = [], []
    for e in est.estimators_:
        if type(e).__name__ == "_ConstantPredictor":
            raise UnsupportedModelError("OneVsRestClassifier with a class seen alone in training is not supported")
        part = _part(e, b, x, n_features)
        positive = None
        if "probabilities" in part.outputs:
            positive = _columns(b, part.outputs["probabilities"], [1])
            positives.append(positive)
        scores.append(b.op("ExpandLast", part.outputs["decision"]) if hasattr(e, "decision_function") else positive)
    if None in scores:
        raise UnsupportedModelError("OneVsRestClassifier: a part has neither decision_function nor predict_proba")
    if est.multilabel_:
        return _multilabel_one_vs_rest(est, b, scores, positives)
    outputs: dict[str, str] = {}
    if len(scores) == 1:  # two classes, one part: positive when the score passes 0 (a decision) or 0.5
        score = b.op("SqueezeLast", scores[0])
        if hasattr(est, "decision_function"):
            outputs["decision"] = score
        if not hasattr(est.estimators_[0], "decision_function"):
            score = b.op("Sub", score, b.const("half", np.array(0.5)))
        outputs["label"] = b.op("IsPositive", score)
        if positives:
            outputs["probabilities"] = b.op("ProbaPair", b.op("SqueezeLast", positives[0]))
    else:
        stacked = _side_by_side(b, scores)
        outputs["label"] = b.op("ArgMax", stacked)
        if hasattr(est, "decision_function"):
            outputs["decision"] = stacked
        if len(positives) == len(scores):
            outputs["probabilities"] = b.op("OvrNormalize", _side_by_side(b, positives))
    run = ["label", "probabilities" if "probabilities" in outputs else "decision"]
    return Converted("classifier", outputs, run, classes=np.asarray(est.classes_))


def _multilabel_one_vs_rest(est: Any, b: GraphBuilder, scores: list[str], positives: list[str]) -> Converted:
    """Each label is on where its part's score passes 0 (a decision) or 0.5 (a probability); predict_proba:
    the parts' positive probabilities, not normalized."""
    stacked = _side_by_side(b, scores)
    threshold = 0.0 if hasattr(est.estimators_[0], "decision_function") else 0.5
    outputs = {"label": b.op("IsPositive", b.op("Sub", stacked, b.const("threshold", np.array(threshold))))}
    if hasattr(est, "decision_function"):
        outputs["decision"] = stacked
    if len(positives) == len(scores):
        outputs["probabilities"] = _side_by_side(b, positives)
    run = ["label", "probabilities" if "probabilities" in outputs else "decision"]
    classes = [np.array([0, 1], dtype=np.int64)] * len(scores)  # the indicator matrix scikit-learn returns
    return Converted("classifier", outputs, run, classes=classes, multilabel=True)


@converts(multioutput.MultiOutputRegressor)
def multi_output_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    columns = [b.op("ExpandLast", _output(_part(e, b, x, n_features), "predictions", est)) for e in est.estimators_]
    return Converted("regressor", {"predictions": b.op("Concat", *columns)}, ["predictions"])


@converts(multioutput.MultiOutputClassifier)
def multi_output_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Labels (rows, outputs) and, where every part has predict_proba, their probabilities side by side
    (``predict_proba`` returns one array per output, as scikit-learn's)."""
    parts = [_part(e, b, x, n_features) for e in est.estimators_]
    labels = b.op("Concat", *(b.op("ExpandLast", _output(p, "label", est)) for p in parts))
    outputs = {"label": labels}
    if all("probabilities" in p.outputs for p in parts):
        outputs["probabilities"] = b.op("Concat", *(p.outputs["probabilities"] for p in parts))
    run = ["label", "probabilities"] if "probabilities" in outputs else ["label"]
    classes = [np.asarray(e.classes_) for e in est.estimators_]
    return Converted("classifier", outputs, run, classes=classes)


@converts(compose.TransformedTargetRegressor)
def transformed_target_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The regressor's prediction mapped back by the transformer's inverse: a scaler's, PowerTransformer's,
    QuantileTransformer's, a named numpy ufunc's, or the identity; on (rows, targets), as scikit-learn
    hands a single target's predictions to it as one column."""
    y = _output(_part(est.regressor_, b, x, n_features), "predictions", est)
    t = est.transformer_
    name = type(t).__name__
    if name == "FunctionTransformer":
        inverse = t.inverse_func
        if inverse is not None:
            where = f"TransformedTargetRegressor(inverse_func={inverse!r})"
            y = b.op("Ufunc", y, name=ufunc_name(inverse, where, t.inv_kw_args))
        return Converted("regressor", {"predictions": y}, ["predictions"])
    single = est._training_dim == 1
    inverse = preprocessing_converters.inverse_transform(t, b, b.op("ExpandLast", y) if single else y)
    if inverse is None:
        raise UnsupportedModelError(
            f"TransformedTargetRegressor with transformer {name} is not supported; supported: a FunctionTransformer "
            "of numpy ufuncs, StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, PowerTransformer, "
            "QuantileTransformer"
        )
    y = b.op("SqueezeLast", inverse) if single else inverse
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(calibration.CalibratedClassifierCV)
def calibrated_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The mean over the calibrated classifiers of their calibrated probabilities: each part's decision
    function (else its probabilities; for two classes the second class's alone) through a sigmoid
    (expit(-(a t + b))) or isotonic calibrator per class, then normalized as scikit-learn does; or, with
    temperature scaling, through one softmax of all classes (see _temperature_scaled)."""
    k = len(est.classes_)
    probas = []
    for calibrated in est.calibrated_classifiers_:
        if calibrated.method not in ("sigmoid", "isotonic", "temperature"):
            raise UnsupportedModelError(f"CalibratedClassifierCV(method={calibrated.method!r}) is not supported")
        e = calibrated.estimator
        # (temperature scaling fits its parts on string labels' codes, 0 .. k - 1 in the classes' order)
        codes = calibrated.method == "temperature" and np.array_equal(np.asarray(e.classes_), np.arange(k))
        if not codes and not np.array_equal(np.asarray(e.classes_), np.asarray(est.classes_)):
            raise UnsupportedModelError("CalibratedClassifierCV: a part saw fewer classes than the whole")
        part = _part(e, b, x, n_features)
        if calibrated.method == "temperature":
            probas.append(_temperature_scaled(b, part, e, k, calibrated.calibrators[0].beta_, est))
            continue
        if hasattr(e, "decision_function"):
            scores = part.outputs["decision"]
            columns = [scores] if k == 2 else [_columns(b, scores, c) for c in range(k)]
        else:
            proba = _output(part, "probabilities", est)
            wanted = [1] if k == 2 else range(k)
            columns = [_columns(b, proba, c) for c in wanted]
        calibrated_columns = [
            _calibrate(b, column, c) for column, c in zip(columns, calibrated.calibrators, strict=True)
        ]
        if k == 2:
            proba = b.op("ProbaPair", calibrated_columns[0])
        else:
            proba = b.op("OvrNormalize", b.op("Concat", *(b.op("ExpandLast", c) for c in calibrated_columns)))
        probas.append(b.op("Clip", proba, low=0.0, high=1.0))
    n = len(probas)
    proba = b.op("WeightedSum", *probas, weights=[1.0] * n, divisor=float(n))
    outputs = {"label": b.op("ArgMax", proba), "probabilities": proba}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


def _temperature_scaled(b: GraphBuilder, part: Converted, e: Any, k: int, beta: Any, est: Any) -> str:
    """softmax(beta * logits) (scikit-learn >= 1.8's temperature scaling): the logits are the part's
    decision function ([-d, d] for two classes), else the log of its probabilities plus 1e-12 (for two
    classes [1 - p, p] of the second's). scikit-learn takes a decision function whose every value in the
    batch lies in [0, 1], each row summing to 1, for probabilities; this keeps to the part's method."""
    if hasattr(e, "decision_function"):
        logits = part.outputs["decision"]
        if k == 2:
            logits = b.op("Mul", b.op("ExpandLast", logits), b.const("opposed", np.array([-1.0, 1.0])))
    else:
        proba = _output(part, "probabilities", est)
        if k == 2:
            proba = b.op("ProbaPair", _columns(b, proba, 1))
        logits = b.op("Ufunc", b.op("Add", proba, b.const("eps", np.array(1e-12))), name="log")
    scaled = b.op("Mul", logits, b.const("beta", np.asarray(beta, np.float64).reshape(())))
    return b.op("Clip", b.op("Softmax", scaled), low=0.0, high=1.0)


def _calibrate(b: GraphBuilder, scores: str, calibrator: Any) -> str:
    if type(calibrator).__name__ == "_SigmoidCalibration":
        z = b.op(
            "Add",
            b.op("Mul", scores, b.const("a", np.asarray(calibrator.a_, np.float64).reshape(()))),
            b.const("b", np.asarray(calibrator.b_, np.float64).reshape(())),
        )
        return b.op("Sigmoid", b.op("Mul", z, b.const("minus_one", np.array(-1.0))))
    xp, fp = np.asarray(calibrator.X_thresholds_), np.asarray(calibrator.y_thresholds_)
    if len(xp) == 1:
        xp, fp = np.array([xp[0], xp[0] + 1.0]), np.repeat(fp, 2)
    column = b.op("ExpandLast", scores)
    return b.op("Interp1d", column, b.const("X_thresholds", xp), b.const("y_thresholds", fp), outside="clip")


@converts(multiclass.OneVsOneClassifier)
def one_vs_one(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each pair's part predicts 0 or 1 and scores (decision_function, else the second probability);
    scikit-learn's vote-and-confidence rule combines them."""
    if est.pairwise_indices_ is not None:
        raise UnsupportedModelError("OneVsOneClassifier on a precomputed kernel is not supported")
    predictions, confidences = [], []
    for e in est.estimators_:
        part = _part(e, b, x, n_features)
        predictions.append(b.op("ExpandLast", _output(part, "label", est)))
        if hasattr(e, "decision_function"):
            confidences.append(b.op("ExpandLast", _output(part, "decision", est)))
        else:
            proba = _output(part, "probabilities", est)
            confidences.append(_columns(b, proba, [1]))
    k = len(est.classes_)
    scores = b.op("OvoCombine", _side_by_side(b, predictions), _side_by_side(b, confidences), n_classes=k)
    if k == 2:
        decision = _columns(b, scores, 1)
        threshold = 0.0 if hasattr(est.estimators_[0], "decision_function") else 0.5
        label = b.op("IsPositive", b.op("Sub", decision, b.const("threshold", np.array(threshold))))
        outputs = {"label": label, "decision": decision}
    else:
        outputs = {"label": b.op("ArgMax", scores), "decision": scores}
    return Converted("classifier", outputs, ["label", "decision"], classes=np.asarray(est.classes_))


@converts(multioutput.ClassifierChain)
def classifier_chain(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each classifier of the chain sees X and, for those before it (in ``order_``), their
    ``chain_method`` response: the predicted class value, or the positive class's probability, log
    probability or decision. Labels come back as floats (scikit-learn fills a float array); predict_proba
    and decision_function are each output's positive-class response, (rows, outputs)."""
    method = getattr(est, "chain_method_", "predict")
    labels, positives, decisions = [], [], []
    features, width = x, n_features
    for e in est.estimators_:
        part = _part(e, b, features, width)
        label = _output(part, "label", est)
        labels.append(b.op("ExpandLast", label))
        binary = len(e.classes_) == 2
        positive = (
            _columns(b, part.outputs["probabilities"], [1]) if binary and "probabilities" in part.outputs else None
        )
        decision = b.op("ExpandLast", part.outputs["decision"]) if binary and "decision" in part.outputs else None
        positives += [positive] if positive is not None else []
        decisions += [decision] if decision is not None else []
        if method == "predict":
            values = b.const("class_values", np.asarray(e.classes_, dtype=np.float64))
            feature = b.op("ExpandLast", b.op("TakeColumns", values, label))
        else:
            response = decision if method == "decision_function" else positive
            if response is None:
                raise UnsupportedModelError(
                    f"ClassifierChain(chain_method={method!r}): a part ({type(e).__name__}, "
                    f"{len(e.classes_)} classes) has no binary {method} to chain"
                )
            feature = response if method != "predict_log_proba" else b.op("Ufunc", response, name="log")
        features, width = b.op("Concat", features, feature), width + 1
    order = np.argsort(np.asarray(est.order_)).astype(np.int32)  # output t is the chain's column order[t]
    restore = b.const("target_order", order)
    outputs = {"label": b.op("TakeColumns", _side_by_side(b, labels), restore)}
    if len(positives) == len(labels):
        outputs["probabilities"] = b.op("TakeColumns", _side_by_side(b, positives), restore)
    if hasattr(est, "decision_function") and len(decisions) == len(labels):
        outputs["decision"] = b.op("TakeColumns", _side_by_side(b, decisions), restore)
    run = ["label", *[role for role in ("probabilities", "decision") if role in outputs][:1]]
    classes = [np.asarray(est.estimators_[i].classes_, dtype=np.float64) for i in order]
    return Converted("classifier", outputs, run, classes=classes, multilabel=True)


@converts(multioutput.RegressorChain)
def regressor_chain(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each regressor of the chain sees X and the predictions of those before it (in ``order_``); the
    outputs come back in the targets' order."""
    if getattr(est, "chain_method_", "predict") != "predict":
        raise UnsupportedModelError(f"RegressorChain(chain_method={est.chain_method_!r}) is not supported")
    columns, features, width = [], x, n_features
    for e in est.estimators_:
        column = b.op("ExpandLast", _output(_part(e, b, features, width), "predictions", est))
        columns.append(column)
        features, width = b.op("Concat", features, column), width + 1
    chain = _side_by_side(b, columns)
    restore = np.argsort(np.asarray(est.order_)).astype(np.int32)
    y = b.op("TakeColumns", chain, b.const("target_order", restore))
    return Converted("regressor", {"predictions": y}, ["predictions"])
