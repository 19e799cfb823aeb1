"""Parameters whose tests share a fitted model run on one worker.

Under ``--dist loadgroup`` (the suite's command, README and .ci/run) pytest-xdist sends every test of a
group to one worker: a case's model is fitted and exported once there, and its later tests load the
programs the first compiled from the executable cache next to the file instead of compiling them again
(the suite's time is mostly XLA compiles). Without xdist the marks do nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest


def by_case(values: Iterable[Any], case_id: Callable[[Any], str] = str) -> list[Any]:
    """``values`` as parameters with ids ``case_id(value)``, each in the worker group of its case."""
    return [pytest.param(v, id=case_id(v), marks=pytest.mark.xdist_group(case_id(v))) for v in values]
