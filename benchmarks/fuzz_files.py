"""Fuzz the reader and runtime with mutated copies of real exported files, from every framework installed.

    python3 benchmarks/fuzz_files.py [--iterations 20000] [--seed 0] [--timeout 60]

Exports small models (scikit-learn linear, forest, pipeline and text, a compressed one, XGBoost, LightGBM,
CatBoost, PyTorch, Keras) plain, signed and encrypted, then for a fixed number of iterations writes a
mutated copy (byte flips, truncation, appended bytes, header fields and manifest values replaced with their
checksums recomputed, so that mutations reach past the checksums) and loads it in a worker process: load
(verifying the signature or decrypting, as the original needs), then run on a few rows. Counted: outcomes
by exception type; ``crash`` (the worker died: a segfault or abort), ``hang`` (no answer within
``--timeout`` seconds) and ``non-format`` (an exception outside mle_runtime's error tree) must all be 0.
Each failing input is kept under benchmarks/results/fuzz-failures/. Writes benchmarks/results/fuzz.json
and fuzz.md; exits 1 when a must-be-zero count is not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

import mle_runtime as mle
from mle_runtime.format import HEADER, HEADER_SIZE, MANIFEST_ZSTD
from mle_runtime.writer import canonical_json, pack_header

RESULTS = Path(__file__).parent / "results"
SIGNING_KEY = bytes(range(1, 33))
ENCRYPTION_KEY = bytes(range(100, 132))
HOSTILE = [0, -1, 1, 7, 63, 64, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 64, 1e308, -1e308, "", "x", None, True, [], {}]


# -- the corpus ----------------------------------------------------------------------------------


def corpus(folder: Path) -> tuple[list[Path], list[str]]:
    """Exported files, plain, signed and encrypted; and the frameworks that were not installed."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    makers: dict[str, Callable[[], Any]] = {
        "sklearn-logreg": lambda: _sk("linear_model", "LogisticRegression")().fit(X, y),
        "sklearn-forest": lambda: _sk("ensemble", "RandomForestClassifier")(5, max_depth=4, random_state=0).fit(X, y),
        "sklearn-pipeline": lambda: _pipeline().fit(X, y),
        "sklearn-text": lambda: _text_pipeline().fit(DOCUMENTS * 20, [0, 1, 1, 0] * 20),
        "sklearn-hashing": lambda: _text_pipeline(hashing=True).fit(DOCUMENTS * 20, [0, 1, 1, 0] * 20),
        "xgboost": lambda: __import__("xgboost").XGBClassifier(n_estimators=5, max_depth=3).fit(X, y),
        "lightgbm": lambda: __import__("lightgbm").LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(X, y),
        "catboost": lambda: __import__("catboost").CatBoostClassifier(iterations=5, depth=3, verbose=0).fit(X, y),
        "pytorch": _torch_model,
        "keras": _keras_model,
    }
    files, missing = [], []
    for name, make in makers.items():
        try:
            model = make()
        except ImportError as e:
            missing.append(f"{name} ({e.name} not installed)")
            continue
        shape = (1, 6) if name == "pytorch" else None
        variants = {
            "plain": {},
            "signed": {"private_key": SIGNING_KEY},
            "encrypted": {"encryption_key": ENCRYPTION_KEY},
        }
        if name == "sklearn-logreg":
            variants["zstd"] = {"compression": "zstd"}
        for variant, options in variants.items():
            path = folder / f"{name}.{variant}.mle"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mle.export_model(model, path, input_shape=shape, **options)
            files.append(path)
    return files, missing


def _sk(module: str, name: str) -> Any:
    return getattr(__import__(f"sklearn.{module}", fromlist=[name]), name)


def _pipeline() -> Any:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), PCA(4), LogisticRegression())


DOCUMENTS = ["the cat sat", "a dog, a café", "Naïve  bees  buzz!", ""]


def _text_pipeline(hashing: bool = False) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if hashing:
        return make_pipeline(HashingVectorizer(n_features=64, ngram_range=(1, 2)), LogisticRegression())
    return make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)), LogisticRegression())


def _torch_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


def _keras_model() -> Any:
    import keras

    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])


# -- mutations -----------------------------------------------------------------------------------


def mutate(data: bytes, r: random.Random) -> tuple[bytes, str]:
    kind = r.choice(["flip", "flip", "truncate", "extend", "header", "manifest", "manifest", "splice"])
    if kind == "flip":
        out = bytearray(data)
        for _ in range(r.randint(1, 8)):
            out[r.randrange(len(out))] ^= r.randint(1, 255)
        return bytes(out), kind
    if kind == "truncate":
        return data[: r.randrange(len(data))], kind
    if kind == "extend":
        return data + r.randbytes(r.choice([1, 8, 64, 104, 1000])), kind
    if kind == "splice":
        a, b = sorted(r.randrange(len(data)) for _ in range(2))
        return data[:a] + data[b:] + data[a:b], kind
    if kind == "header":
        return _rewrite_header(data, r), kind
    return _rewrite_manifest(data, r), kind


def _rewrite_header(data: bytes, r: random.Random) -> bytes:
    fields = list(HEADER.unpack(data[:HEADER_SIZE]))
    i = r.choice([1, 2, 4, 5, 6, 7, 8, 9])
    limit = (1 << 32) - 1 if i in (1, 2, 9) else (1 << 64) - 1
    fields[i] = r.choice([0, 1, 4, 63, 64, 104, len(data), limit, r.randrange(limit)]) & limit
    fields[3] = 0
    fields[3] = mle.SecurityUtils.compute_checksum(HEADER.pack(*fields))
    return HEADER.pack(*fields) + data[HEADER_SIZE:]


def _rewrite_manifest(data: bytes, r: random.Random) -> bytes:
    """A value somewhere in the manifest replaced, sizes, offsets and checksums kept consistent."""
    fields = list(HEADER.unpack(data[:HEADER_SIZE]))
    raw = data[HEADER_SIZE : HEADER_SIZE + fields[5]]
    try:
        manifest = json.loads(zstandard.ZstdDecompressor().decompress(raw) if fields[2] & MANIFEST_ZSTD else raw)
    except (zstandard.ZstdError, ValueError):
        return data
    _replace_somewhere(manifest, r)
    try:
        text = canonical_json(manifest)
    except (ValueError, TypeError):
        return data
    data_offset = (HEADER_SIZE + len(text) + 63) // 64 * 64
    body = data[fields[6] :]
    shift = data_offset - fields[6]
    head = pack_header(
        fields[2] & ~MANIFEST_ZSTD,
        text,
        data_offset,
        fields[7],
        fields[8] + shift if fields[8] else 0,
        fields[9],
    )
    return head + text + bytes(data_offset - HEADER_SIZE - len(text)) + body


def _replace_somewhere(node: Any, r: random.Random) -> None:
    for _ in range(32):
        if isinstance(node, dict) and node:
            key = r.choice(list(node))
            if r.random() < 0.3 or not isinstance(node[key], (dict, list)) or not node[key]:
                node[key] = _hostile(r)
                return
            node = node[key]
        elif isinstance(node, list) and node:
            i = r.randrange(len(node))
            if r.random() < 0.3 or not isinstance(node[i], (dict, list)) or not node[i]:
                node[i] = _hostile(r)
                return
            node = node[i]
        else:
            return


def _hostile(r: random.Random) -> Any:
    value = r.choice(HOSTILE)
    if value in ([], {}):
        return type(value)()
    return r.choice([value, [value] * r.randint(1, 3), {"x": value}])


# -- the worker ----------------------------------------------------------------------------------


def worker() -> int:
    """Reads one task per line (JSON: path, mode) and answers one line: the outcome."""
    from mle_runtime.errors import MleError

    for line in sys.stdin:
        task = json.loads(line)
        outcome: dict[str, Any]
        try:
            options: dict[str, Any] = {"cache": False}
            if task["mode"] == "signed":
                options.update(verify_signature=True, public_key=_public_key())
            if task["mode"] == "encrypted":
                options["decryption_key"] = ENCRYPTION_KEY
            runtime = mle.load_model(task["path"], **options)
            info = runtime.get_model_info()
            if info["metadata"].get("text_features"):  # documents, in a column of their own
                runtime.run([np.array(DOCUMENTS, dtype=object).reshape(-1, 1)])
            else:
                runtime.run([_rows(spec) for spec in info["inputs"]])
            outcome = {"type": "ok"}
        except MleError as e:
            outcome = {"type": type(e).__name__, "format": True}
        except Exception as e:  # (the point: any other exception is a finding)
            outcome = {"type": type(e).__name__, "format": False, "detail": "".join(traceback.format_exception(e))}
        print(json.dumps(outcome), flush=True)
    return 0


def _public_key() -> Any:
    from mle_runtime import signing

    return signing.private_key(SIGNING_KEY).public_key()


def _rows(spec: Any) -> np.ndarray:
    shape = spec.get("shape", [None, 1]) if isinstance(spec, dict) else [None, 1]
    dims = [3 if d is None else d if type(d) is int and 0 < d <= 4096 else 1 for d in shape]
    return np.zeros(dims, np.float32)


class Worker:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None

    def ask(self, task: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(task) + "\n")
        self.proc.stdin.flush()
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        if not selector.select(self.timeout):
            self.proc.kill()
            self.proc.wait()
            return {"type": "hang"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"type": "crash", "detail": f"worker exited with {code}"}
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)


# -- the run -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one input may take (first: compile)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker()

    folder = Path(tempfile.mkdtemp(prefix="mle-fuzz-"))
    failures = RESULTS / "fuzz-failures"
    shutil.rmtree(failures, ignore_errors=True)
    counts: collections.Counter[str] = collections.Counter()
    by_kind: collections.Counter[str] = collections.Counter()
    findings = []
    start = time.perf_counter()
    try:
        files, missing = corpus(folder)
        originals = {p: p.read_bytes() for p in files}
        r = random.Random(args.seed)
        pool = Worker(args.timeout)
        for base in files:  # the originals must load and run
            outcome = pool.ask({"path": str(base), "mode": base.suffixes[-2][1:]})
            if outcome["type"] != "ok":
                raise SystemExit(f"{base.name} does not load as exported: {outcome}")
        case = folder / "case.mle"
        for i in range(args.iterations):
            base = r.choice(files)
            data, kind = mutate(originals[base], r)
            case.write_bytes(data)
            outcome = pool.ask({"path": str(case), "mode": base.suffixes[-2][1:]})
            counts[outcome["type"]] += 1
            by_kind[kind] += 1
            bad = outcome["type"] in ("crash", "hang") or outcome.get("format") is False
            if outcome["type"] == "ok" and data != originals[base] and base.suffixes[-2] == ".signed":
                bad = True
                outcome["detail"] = "a changed signed file loaded with verification"
            if bad:
                failures.mkdir(parents=True, exist_ok=True)
                kept = failures / f"{i:06d}-{base.stem}-{kind}.mle"
                kept.write_bytes(data)
                findings.append({"iteration": i, "base": base.name, "mutation": kind, **outcome, "file": str(kept)})
            if (i + 1) % 1000 == 0:
                print(f"{i + 1:,} iterations: {dict(counts)}", file=sys.stderr, flush=True)
        pool.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    elapsed = time.perf_counter() - start
    crashes, hangs = counts["crash"], counts["hang"]
    non_format = sum(1 for f in findings if f.get("format") is False)
    changed_signed_ok = sum(1 for f in findings if f["type"] == "ok")
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "versions": {k: v for k, v in mle.get_version_info().items() if k != "operators"},
        "iterations": args.iterations,
        "seed": args.seed,
        "seconds": round(elapsed, 1),
        "files": [p.name for p in files],
        "not_installed": missing,
        "mutations": dict(by_kind),
        "outcomes": dict(counts.most_common()),
        "crashes": crashes,
        "hangs": hangs,
        "non_format_exceptions": non_format,
        "changed_signed_files_loaded": changed_signed_ok,
        "findings": findings[:50],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fuzz.json").write_text(json.dumps(summary, indent=2))
    text = markdown(summary)
    (RESULTS / "fuzz.md").write_text(text)
    print(text)
    return 1 if crashes or hangs or non_format or changed_signed_ok else 0


def markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# Fuzzing the reader and runtime ({s['date']}, {s['machine']})",
        "",
        f"{s['iterations']:,} mutated files (seed {s['seed']}) from {len(s['files'])} exported files in "
        f"{s['seconds']:.0f} s; not installed: {', '.join(s['not_installed']) or 'none'}.",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {k} | {v:,} |" for k, v in s["outcomes"].items()],
        "",
        "Mutations: " + ", ".join(f"{k} {v:,}" for k, v in s["mutations"].items()) + ".",
        "",
        f"- crashes (must be 0): {s['crashes']}",
        f"- hangs (must be 0): {s['hangs']}",
        f"- non-format exceptions (must be 0): {s['non_format_exceptions']}",
        f"- changed signed files that loaded with verification (must be 0): {s['changed_signed_files_loaded']}",
    ]
    for f in s["findings"][:10]:
        lines.append(f"  - #{f['iteration']} {f['base']} ({f['mutation']}): {f['type']} {f.get('detail', '')[-300:]}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
