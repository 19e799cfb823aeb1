"""Streaming a large Parquet file through a tree model with predict_file: rows per second and peak memory.

    python3 benchmarks/bench_stream.py [--rows 10000000] [--chunk-rows 65536]

Writes a Parquet file of ``--rows`` rows x 20 float32 features (in row groups of 100,000, never all in
memory), then runs a 100-tree RandomForestClassifier (depth 10) over it in a fresh process with
``mle.predict_file`` to a Parquet output, and reports rows per second and that process's peak resident
memory (``ru_maxrss``). Target (issue 7): peak RSS below 1.5 GB whatever the file's size. Writes
benchmarks/results/stream.json and stream.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_linear import machine, save_results
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

import mle_runtime as mle

FEATURES = 20
GROUP = 100_000
TARGET_BYTES = 1.5e9

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import mle_runtime as mle

    start = time.perf_counter()
    done = mle.predict_file(sys.argv[1], sys.argv[2], sys.argv[3], chunk_rows=int(sys.argv[4]))
    done["wall_s"] = time.perf_counter() - start
    done["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(done))
    """
)


def write_input(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP):
            n = min(GROUP, rows - start)
            block = rng.normal(size=(n, FEATURES)).astype(np.float32)
            writer.write_table(pa.table({f"f{i}": block[:, i] for i in range(FEATURES)}, schema=schema))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    args = parser.parse_args()
    X, y = make_classification(20_000, FEATURES, n_informative=10, random_state=0)
    model = RandomForestClassifier(100, max_depth=10, random_state=0, n_jobs=-1).fit(X, y)
    with tempfile.TemporaryDirectory(prefix="mle-bench-stream-") as folder:
        root = Path(folder)
        mle.export_model(model, root / "forest.mle")
        t0 = time.perf_counter()
        write_input(root / "in.parquet", args.rows)
        write_s = time.perf_counter() - t0
        size = (root / "in.parquet").stat().st_size
        print(f"input: {args.rows:,} rows, {size / 1e6:.0f} MB written in {write_s:.0f} s", file=sys.stderr)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(root / "forest.mle"),
                str(root / "in.parquet"),
                str(root / "out.parquet"),
                str(args.chunk_rows),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        out_rows = pq.ParquetFile(root / "out.parquet").metadata.num_rows
    result.update(input_bytes=size, output_rows=out_rows, chunk_rows=args.chunk_rows)
    peak = result["peak_rss_bytes"]
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {k: v for k, v in mle.get_version_info().items() if k != "operators"},
        "targets": [
            f"peak RSS below 1.5 GB streaming {args.rows:,} rows: {peak / 1e9:.2f} GB -> "
            f"{'MET' if peak < TARGET_BYTES else 'MISSED'}"
        ],
    }
    text = "\n".join(
        [
            f"# Streaming Parquet through a forest ({meta['date']}, {meta['machine']})",
            "",
            f"{args.rows:,} rows x {FEATURES} float32 features ({size / 1e6:,.0f} MB of Parquet), a 100-tree "
            f"depth-10 RandomForestClassifier, chunks of {args.chunk_rows:,} rows, output Parquet "
            f"({out_rows:,} rows of label and probabilities).",
            "",
            f"- {result['rows_per_second']:,.0f} rows/s ({result['wall_s']:.1f} s in predict_file)",
            f"- peak resident memory of the process: {peak / 1e6:,.0f} MB",
            "",
            "## Targets",
            "",
            *[f"- {t}" for t in meta["targets"]],
        ]
    )
    save_results("stream", meta, [result], text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
