"""Command line: ``mle export|inspect|benchmark|predict|demo|keygen|sign|verify`` and the aliases mle-export,
mle-inspect, mle-benchmark.

User errors (missing file, corrupt file, wrong shape, unsupported model) print one line on stderr and
exit 1; usage errors exit 2."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mle_runtime.errors import MleError

USER_ERRORS = (FileNotFoundError, IsADirectoryError, PermissionError, ValueError, TypeError, RuntimeError, MleError)


def _export(args: argparse.Namespace) -> int:
    from mle_runtime.converters import export_model
    from mle_runtime.converters.native import CODE_RUNNING, load_native, native_format

    source = Path(args.model)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    framework = native_format(source)
    if framework in CODE_RUNNING:
        print(
            f"note: loading a {source.suffix} file can run code stored in it; export only files you trust",
            file=sys.stderr,
        )
    if framework is not None:
        try:
            model = load_native(source, framework)
        except ImportError as e:
            raise RuntimeError(f"{source} is a {framework} model file, but {framework} is not installed") from e
        except Exception as e:  # (the framework's own parser failed: a bad input file)
            raise ValueError(f"{source} is not a readable {framework} model ({type(e).__name__}: {e})") from e
    else:
        print("note: loading a pickle runs code stored in it; export only pickles you trust", file=sys.stderr)
        model = _unpickle(source)
    result = export_model(model, args.output, compression=args.compression)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        reference = result["joblib_size_bytes"]
        against = "not picklable" if reference is None else f"{reference:,}, ratio {result['compression_ratio']:.2f}x"
        print(
            f"wrote {result['path']}: {result['model_type']} ({result['framework']}), "
            f"{result['file_size_bytes']:,} bytes (joblib: {against}) in {result['export_time_ms']:.0f} ms"
        )
    return 0


def _unpickle(path: Path) -> Any:
    try:
        import joblib
    except ImportError:
        import pickle

        with path.open("rb") as f:
            return pickle.load(f)  # (the user asked to export this trusted pickle)
    try:
        return joblib.load(path)
    except Exception as e:  # (any unpickling failure is a bad input file)
        raise ValueError(f"{path} is not a readable joblib/pickle file ({type(e).__name__}: {e})") from e


def _inspect(args: argparse.Namespace) -> int:
    from mle_runtime.api import inspect_model

    info = inspect_model(args.model)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    basic, meta = info["basic_info"], info["basic_info"]["metadata"]
    rows = [
        ("file", f"{info['path']} ({info['file_size']:,} bytes, format v{basic['version']})"),
        (
            "estimator",
            f"{meta.get('estimator', '?')} ({meta.get('framework', '?')} {meta.get('framework_version', '')})",
        ),
        ("task", str(meta.get("task", "?")) + (f", classes {meta['classes']}" if "classes" in meta else "")),
        (
            "inputs",
            ", ".join(
                f"{i['name']}: {i.get('dtype', 'float')} {['n' if d is None else d for d in i['shape']]}"
                for i in basic["inputs"]
            ),
        ),
        ("outputs", ", ".join(o["name"] for o in basic["outputs"])),
        *(
            (
                "text",
                f"column {f['column']}: {f['analyzer']} analyser, n-grams {f['ngram_range']}, "
                + (
                    f"hashed into {f['hashing']['n_features']:,} columns"
                    if f.get("hashing")
                    else f"{len(f['vocabulary']):,} terms"
                ),
            )
            for f in meta.get("text_features", [])
        ),
        ("operators", ", ".join(basic["operators"])),
        ("features", ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in basic["features"].items())),
        (
            "parameters",
            f"{info['num_parameters']:,} in {len(info['tensors'])} tensors "
            f"({info['compression_stats']['raw_bytes']:,} bytes raw, "
            f"{info['compression_stats']['stored_bytes']:,} stored)",
        ),
    ]
    for key, value in rows:
        print(f"{key:<11} {value}")
    print()
    table = [("tensor", "dtype", "shape", "bytes", "compression")] + [
        (
            t["name"],
            t["dtype"],
            "x".join(map(str, t["shape"])) or "scalar",
            f"{t['stored_bytes']:,}",
            ("none", "lz4", "zstd")[t["compression"]],
        )
        for t in info["tensors"]
    ]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("\nrecommendations:")
    for tip in info["recommendations"]:
        print(f"  - {tip}")
    return 0


def load_data(path: str | Path, runtime: Any = None) -> np.ndarray:
    """A 2-D array from .npy (numbers, no pickles) or .csv, read as ``predict_file`` reads it (a header
    row recognised and skipped; for a loaded ``runtime`` with string columns, those columns as text)."""
    from mle_runtime.batch import DEFAULT_CHUNK_ROWS, csv_reader  # (batch imports the runtime: loaded when needed)

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such data file: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{p} is not a readable .npy file of numbers ({e})") from e
        if data.dtype.kind not in "biuf":
            raise ValueError(f"{p}: data of dtype {data.dtype} is not numeric")
        return data
    if suffix != ".csv":
        raise ValueError(f"{p}: unsupported data format {suffix!r}; use .npy or .csv")
    chunks = list(csv_reader(p, DEFAULT_CHUNK_ROWS, runtime).chunks())
    return np.concatenate(chunks) if chunks else np.empty((0, 0))


def progress_bar(total: int, label: str) -> Callable[[int], None]:
    """A one-line progress bar on stderr."""
    start = time.perf_counter()

    def update(done: int) -> None:
        filled = int(30 * done / total)
        rate = done / max(time.perf_counter() - start, 1e-9)
        end = "\n" if done == total else ""
        print(
            f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} ({rate:.1f}/s)",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return update


def _benchmark(args: argparse.Namespace) -> int:
    from mle_runtime.runtime import load_model

    runtime = load_model(args.model, device=args.device, **_key_options(args))
    data = load_data(args.data, runtime)
    if args.batch_size:
        data = data[: args.batch_size]
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    stats = runtime.benchmark(
        [data], num_runs=args.runs, progress=progress_bar(args.runs, "benchmark") if show else None
    )
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{args.model}: {stats['batch_size']:,} rows x {args.runs} runs on {args.device}")
        for key in ("mean_ms", "std_ms", "min_ms", "median_ms", "p95_ms", "max_ms"):
            print(f"  {key:<10} {stats[key]:10.3f}")
        print(f"  throughput {stats['throughput_rows_per_s']:,.0f} rows/s")
    return 0


def _read_key(path: str) -> bytes:
    """A key file's bytes: PEM, or the raw 32 bytes."""
    key = Path(path)
    if not key.is_file():
        raise FileNotFoundError(f"no such key file: {key}")
    return key.read_bytes()


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from mle_runtime import signing
    from mle_runtime.security import SecurityUtils
    from mle_runtime.writer import write_atomic

    _, private = SecurityUtils.generate_keypair()
    key = signing.private_key(private)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (args.private, args.public):
        if Path(path).exists() and not args.force:
            raise ValueError(f"{path} exists; pass --force to replace it")
    write_atomic(args.private, [private_pem], mode=0o600)
    write_atomic(args.public, [public_pem])
    print(f"wrote {args.private} (private, mode 600) and {args.public}; key {signing.fingerprint(key.public_key())}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from mle_runtime.security import SecurityUtils

    result = SecurityUtils.sign_model(args.model, _read_key(args.key), output_path=args.output)
    print(f"signed {result['path']} with key {result['signer']} ({result['file_size']:,} bytes)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from mle_runtime.security import SecurityUtils

    result = SecurityUtils.verify_model(args.model, _read_key(args.key))
    checked = "signature only: tensor data is encrypted" if result["encrypted"] else "every checksum too"
    print(f"{result['path']}: signature OK, signed with key {result['signer']} ({checked})")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from mle_runtime import cache_contents

    if args.older_than is not None and (not args.clear or args.older_than < 0):
        raise ValueError("--older-than DAYS (a number >= 0) goes with --clear")
    report: list[dict[str, Any]] = []
    for folder in cache_contents.folders(args.paths):
        found = cache_contents.entries(folder)
        removed = cache_contents.remove(found, args.older_than) if args.clear else []
        report.append(
            {"folder": str(folder), "held": cache_contents.summary(found), "removed": cache_contents.summary(removed)}
        )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not report:
        print("no cache folders" + (f" under {', '.join(args.paths)}" if args.paths else ""))
    for r in report:
        held = ", ".join(f"{s['entries']} {kind} ({s['bytes'] / 1e6:.1f} MB)" for kind, s in r["held"].items())
        print(f"{r['folder']}: {held}")
        if args.clear:
            gone = r["removed"].values()
            print(f"  removed {sum(s['entries'] for s in gone)} ({sum(s['bytes'] for s in gone) / 1e6:.1f} MB)")
    return 0


def _key_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.public_key:
        options.update(verify_signature=True, public_key=_read_key(args.public_key))
    if args.decryption_key:
        options["decryption_key"] = _read_key(args.decryption_key)
    return options


def _add_key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--public-key", help="verify the model's signature with this Ed25519 public key file first")
    p.add_argument("--decryption-key", help="file holding the 32-byte key of an encrypted model")


def _predict(args: argparse.Namespace) -> int:
    from mle_runtime.batch import predict_file
    from mle_runtime.runtime import load_model

    runtime = load_model(args.model, device=args.device, **_key_options(args))
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    start = time.perf_counter()

    def report(done: int, total: int | None) -> None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        share = f"{done:,}/{total:,} rows" if total else f"{done:,} rows"
        print(f"\rpredict {share} ({rate:,.0f} rows/s)", end="", file=sys.stderr, flush=True)

    outputs = args.outputs.split(",") if args.outputs else None
    result = predict_file(
        runtime,
        args.input,
        args.output,
        outputs=outputs,
        chunk_rows=args.chunk_rows,
        progress=report if show else None,
        header=args.header,
    )
    if show:
        print(file=sys.stderr)
    print(
        f"wrote {result['path']}: {result['rows']:,} rows of {', '.join(result['outputs'])} "
        f"in {result['seconds']:.2f} s ({result['rows_per_second']:,.0f} rows/s)"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mle_runtime.demo import run_demo

    return run_demo(out_dir=args.out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mle", description="Export, inspect, benchmark, run, sign and verify .mle models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in (("export", _add_export), ("inspect", _add_inspect), ("benchmark", _add_benchmark)):
        add(sub.add_parser(name))
    demo = sub.add_parser("demo", help="train models on bundled data, export, load, compare with joblib")
    demo.add_argument("--out", help="folder for the exported files (default: a temporary folder)")
    demo.set_defaults(func=_demo)
    predict = sub.add_parser("predict", help="run a model over a .npy, .csv or .parquet file in chunks")
    predict.add_argument("model")
    predict.add_argument("input", help=".npy, .csv or .parquet file of input rows")
    predict.add_argument("output", help="file to write, in the input's format (written atomically)")
    predict.add_argument("--outputs", help="comma-separated output names (default: all; .npy: the first)")
    predict.add_argument("--chunk-rows", type=int, default=65_536)
    predict.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a CSV's first line is (not) a header (default: decided from the file and the model)",
    )
    predict.add_argument("--device", default="cpu")
    _add_key_options(predict)
    predict.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    predict.set_defaults(func=_predict)
    keygen = sub.add_parser("keygen", help="write a new Ed25519 key pair as PEM files")
    keygen.add_argument("private", help="path of the private key to write (mode 600)")
    keygen.add_argument("public", help="path of the public key to write")
    keygen.add_argument("--force", action="store_true", help="replace existing files")
    keygen.set_defaults(func=_keygen)
    sign = sub.add_parser("sign", help="sign an .mle file (in place, or to --output)")
    sign.add_argument("model")
    sign.add_argument("--key", required=True, help="Ed25519 private key file (PEM or 32 raw bytes)")
    sign.add_argument("--output", "-o", help="write the signed file here instead of replacing the model")
    sign.set_defaults(func=_sign)
    verify = sub.add_parser("verify", help="check an .mle file's signature; exit 1 unless it verifies")
    verify.add_argument("model")
    verify.add_argument("--key", required=True, help="the signer's Ed25519 public key file (PEM or 32 raw bytes)")
    verify.set_defaults(func=_verify)
    cache = sub.add_parser(
        "cache",
        help="what the compile caches hold (compiled programs, cast copies, unpickled models); --clear removes it",
    )
    cache.add_argument(
        "paths",
        nargs="*",
        help="model files or folders whose __mlecache__ folders to look at (default: the per-user cache folder "
        "and $MLE_CACHE_DIR)",
    )
    cache.add_argument("--clear", action="store_true", help="remove the entries (each is rebuilt when next needed)")
    cache.add_argument(
        "--older-than", type=float, metavar="DAYS", help="with --clear: only entries unused for DAYS days"
    )
    cache.add_argument("--json", action="store_true")
    cache.set_defaults(func=_cache)
    return parser


def _add_export(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Export a trained model to .mle: a framework's own model file (XGBoost .json/.ubj, LightGBM text, "
        "CatBoost .cbm/.json, Keras .keras, PyTorch .pt2 from torch.export.save with a dynamic batch dimension) "
        "or a joblib/pickle file (a .pt2 or a pickle can run code stored in it: trusted files only)."
    )
    p.add_argument(
        "model",
        help="XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm, Keras .keras, PyTorch .pt2, or a joblib/pickle file",
    )
    p.add_argument("output", help="path of the .mle file to write")
    p.add_argument("--compression", choices=["none", "lz4", "zstd"], default="none")
    p.add_argument("--json", action="store_true", help="print the export result as JSON")
    p.set_defaults(func=_export)


def _add_inspect(p: argparse.ArgumentParser) -> None:
    p.description = "Describe an .mle file from its manifest (no weights are loaded)."
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_inspect)


def _add_benchmark(p: argparse.ArgumentParser) -> None:
    p.description = "Time inference of an .mle model on data from a .npy or .csv file."
    p.add_argument("model")
    p.add_argument("data", help=".npy or .csv file of input rows")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--batch-size", type=int, help="use only the first N rows")
    p.add_argument("--device", default="cpu")
    _add_key_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    p.set_defaults(func=_benchmark)


def _dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except USER_ERRORS as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return _dispatch(_parser(), argv)


def _alias(name: str, add: Callable[[argparse.ArgumentParser], None], argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=f"mle-{name}")
    add(parser)
    return _dispatch(parser, argv)


def export_main(argv: Sequence[str] | None = None) -> int:
    return _alias("export", _add_export, argv)


def inspect_main(argv: Sequence[str] | None = None) -> int:
    return _alias("inspect", _add_inspect, argv)


def benchmark_main(argv: Sequence[str] | None = None) -> int:
    return _alias("benchmark", _add_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
