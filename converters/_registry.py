"""Converter registry: dispatch on the exact type of a model; subclasses opt in by registering."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mle_runtime.errors import UnsupportedModelError

ConverterFn = Callable[..., Any]
_CONVERTERS: dict[type, ConverterFn] = {}


def converts(*classes: type) -> Callable[[ConverterFn], ConverterFn]:
    """Register the decorated function as the converter of each class; a duplicate is an error."""

    def wrap(fn: ConverterFn) -> ConverterFn:
        for cls in classes:
            if cls in _CONVERTERS:
                raise ValueError(f"{cls.__qualname__} already has a converter ({_CONVERTERS[cls].__qualname__})")
            _CONVERTERS[cls] = fn
        return fn

    return wrap


# The modules converting other frameworks' scikit-learn-style models, which may be pipeline steps: each
# gives ``step_classes()`` and ``build(model, builder, x, input_shape)``, registered when such a model is
# first seen (so that the framework is imported only then).
_FRAMEWORK_STEPS = {
    "xgboost": "mle_runtime.converters.xgboost",
    "lightgbm": "mle_runtime.converters.lightgbm",
    "catboost": "mle_runtime.converters.catboost",
}
# Their converters, apart from the scikit-learn ones (which the README's table lists).
_STEPS: dict[type, ConverterFn] = {}


def converter_for(model: Any) -> ConverterFn:
    cls = type(model)
    fn = _CONVERTERS.get(cls) or _STEPS.get(cls)
    framework = _FRAMEWORK_STEPS.get(cls.__module__.split(".")[0])
    if fn is None and framework is not None:
        module = importlib.import_module(framework)

        def step(est: Any, b: Any, x: str, n_features: int) -> Any:
            return module.build(est, b, x, (None, n_features))[0]

        _STEPS.update(dict.fromkeys(module.step_classes(), step))
        fn = _STEPS.get(cls)
    if fn is None:
        raise UnsupportedModelError(
            f"{cls.__module__}.{cls.__qualname__} is not supported; supported: {', '.join(supported_names())} "
            "(see README, 'Supported models')"
        )
    return fn


def supported_classes() -> list[type]:
    return sorted(_CONVERTERS, key=lambda c: (c.__module__, c.__qualname__))


def supported_names() -> list[str]:
    return sorted({c.__name__ for c in _CONVERTERS})
