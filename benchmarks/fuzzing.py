"""What the fuzzers share: a run's time limit, drawing options, a loop over runs, and for the network
fuzzers their runs' verdicts and results."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import signal
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


class RunTimeout(BaseException):
    """A run past its limit: the fuzzers' own, so that a library's TimeoutError reads as that library's
    failure, not as the limit; a BaseException, so that a run's ``except Exception`` lets it pass."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """RunTimeout after ``seconds`` (SIGALRM: the main thread of a POSIX process)."""

    def expire(*_: Any) -> None:
        raise RunTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pick(rng: np.random.Generator, options: list[Any]) -> Any:
    """One of ``options`` (a numpy scalar as its Python value)."""
    value = options[int(rng.integers(len(options)))]
    return value.item() if isinstance(value, np.generic) else value


def integer(rng: np.random.Generator, low: int, high: int) -> int:
    """An int in [low, high]."""
    return int(rng.integers(low, high + 1))


def chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p``."""
    return bool(rng.random() < p)


def said(e: BaseException, limit: int = 240) -> str:
    """An exception as one line of a results table."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:limit]


def magnitude_error(ours: Any, ref: Any) -> float:
    """The largest difference over the reference's largest finite magnitude (the networks' rule); NaN
    where the reference has NaN counts as equal; infinite for a shape that differs."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if not ref.size:
        return 0.0
    finite = np.abs(ref[np.isfinite(ref)])
    scale = max(float(finite.max()) if finite.size else 0.0, float(np.finfo(np.float64).tiny))
    same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        difference = np.where(same, 0.0, np.abs(ours - ref))
    return float(np.nan_to_num(difference.max(), nan=np.inf) / scale)


def arguments(doc: str, runs: int, only: str, choices: tuple[str, ...] | None = None) -> argparse.Namespace:
    """A fuzzer's command line (--runs, --seed, --only, --timeout; ``only`` says what --only keeps), with
    warnings silenced for the runs."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", choices=choices, help=only)
    parser.add_argument("--timeout", type=int, default=120, help="seconds a run may take")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    return args


def each_run(
    count: int,
    timeout: int,
    one_run: Callable[[int], T | None],
    failed: Callable[[int, str], T],
    before: Callable[[], None] | None = None,
) -> Iterator[T]:
    """``one_run(index)`` for each index below ``count`` (None: a run left out), each within ``timeout``
    seconds; a run past it or raising is ``failed(index, what happened)``."""
    for index in range(count):
        if before is not None:
            before()
        try:
            with time_limit(timeout):
                run = one_run(index)
        except RunTimeout:
            run = failed(index, f"over {timeout} s")
        except Exception as e:
            trace = " / ".join(traceback.format_exc().strip().splitlines()[-3:])
            run = failed(index, f"{said(e, 300)} {trace}"[:400])
        if run is not None:
            yield run


# -- networks drawn at random (fuzz_networks.py, fuzz_keras.py) ------------------------------------------


@dataclass
class NetworkRun:
    """A drawn network's layers and what became of it: skipped (its framework builds it and then cannot run
    it), refused at export, or a verdict per check ("ok", "ok: ..." where held to the float64 answer,
    "not run: ..." where the check could not be made, which is not a difference)."""

    index: int
    family: str
    layers: str = ""
    skipped: str = ""
    refused: str = ""
    outcome: dict[str, str] = field(default_factory=dict)

    def differs(self) -> bool:
        return any(not v.startswith(("ok", "not run")) for v in self.outcome.values())


def network_verdict(
    ours: np.ndarray, answer: np.ndarray, exact: Callable[[], np.ndarray | None] | None, tol: float, framework: str
) -> str:
    """ "ok" within ``tol`` of the framework's ``answer`` (of the output's magnitude); where not, "ok: ..."
    within ``tol`` of the framework's float64 answer (``exact()``, None where it cannot be had) and no
    further from it than the framework's own: two answers each near ``tol`` from the exact one may be
    up to twice that apart; else the error."""
    error = magnitude_error(ours, answer)
    if error <= tol:
        return "ok"
    wide = exact() if exact is not None and np.shape(ours) == np.shape(answer) else None
    if wide is not None:
        theirs, mine = magnitude_error(answer, wide), magnitude_error(ours, wide)
        if mine <= min(tol, theirs):
            return f"ok: {framework}'s float32 {theirs:.2g} from its float64, ours {mine:.2g}"
    shapes = f" (shapes {np.shape(ours)}, {np.shape(answer)})" if np.shape(ours) != np.shape(answer) else ""
    return f"scaled error {error:.3g}{shapes}"


def fuzz_networks(
    doc: str,
    families: tuple[str, ...],
    runs: int,
    one_run: Callable[[int, int, str, Path], NetworkRun | None],
    framework: str,
    stem: str,
    before: Callable[[], None] | None = None,
) -> int:
    """A network fuzzer's command line: ``one_run(index, seed, family or "", folder)`` for each run, the
    differing ones printed, the results written to results/``stem``.json and .md; 1 where any differs."""
    args = arguments(doc, runs, "only this family", ("", *families))
    started, done = time.time(), []
    with tempfile.TemporaryDirectory() as tmp:

        def failed(index: int, message: str) -> NetworkRun:
            return NetworkRun(index, families[index % len(families)], outcome={"run": message})

        draw = functools.partial(one_run, seed=args.seed, only=args.only, folder=Path(tmp))
        for run in each_run(args.runs, args.timeout, draw, failed, before):
            done.append(run)
            if run.differs():
                print(f"run {run.index} ({run.family}): {run.outcome}\n    {run.layers}", flush=True)
    return _write_network_results(done, args.seed, time.time() - started, framework, stem)


def _write_network_results(runs: list[NetworkRun], seed: int, seconds: float, framework: str, stem: str) -> int:
    differ = [r for r in runs if r.differs()]
    skipped, refused = [r for r in runs if r.skipped], [r for r in runs if r.refused]
    arbitrated = [r for r in runs if any(v.startswith("ok:") for v in r.outcome.values())]
    inexact = [r for r in runs if any(v.startswith("ok, inexact reference") for v in r.outcome.values())]
    summary = (
        f"{len(runs)} runs (seed {seed}) in {seconds:.0f} s: {len(skipped)} that {framework} itself cannot run, "
        f"{len(refused)} refused at export, {len(differ)} differ from {framework}, {len(arbitrated)} held to "
        f"{framework}'s float64 answer, nearer to it than {framework}'s float32 one"
    )
    if inexact:
        summary += f", {len(inexact)} held to 1e-6 in float64 where {framework}'s float64 model rounds in float32"
    summary += "."
    lines = [f"# {framework} networks drawn at random ({time.strftime('%Y-%m-%d')})", "", summary, ""]
    lines += ["| run | family | outcome | layers |", "|---|---|---|---|"]
    for r in runs:
        outcome = (r.skipped and f"{framework} cannot run it: {r.skipped}") or (r.refused and f"refused: {r.refused}")
        outcome = outcome or "; ".join(f"{k}: {v}" for k, v in r.outcome.items())
        lines.append(f"| {r.index} | {r.family} | {outcome.replace('|', '/')} | {r.layers.replace('|', '/')} |")
    RESULTS.mkdir(exist_ok=True)
    record = {"summary": summary, "runs": [dataclasses.asdict(r) for r in runs]}
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(summary)
    return 1 if differ else 0
