"""Keras 3 networks against Keras itself and the .keras file, side by side in one run.

    python3 benchmarks/bench_keras.py [--quick]

The Keras counterparts of bench_networks.py's models (an MLP 784-512-512-10, a ResNet-style CNN on
32x32x3 images, a Transformer encoder classifier over 64 tokens): throughput (rows/s) at batch 1, 64 and
1,024 against ``model.predict`` and a direct ``model(x, training=False)`` call, and file size and load
time against the ``.keras`` file. Writes benchmarks/results/keras.json and keras.md. Target (issue 5, CPU):
>= Keras's throughput at batch >= 64.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from bench_linear import machine, per_call, record_rows_per_second, save_results

import mle_runtime as mle

BATCHES = (1, 64, 1024)
layers = keras.layers


def mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((784,)),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(10),
        ]
    )


def resnet() -> keras.Model:
    def block(x: Any, channels: int, stride: int) -> Any:
        y = layers.Conv2D(channels, 3, stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(channels, 3, padding="same", use_bias=False)(y))
        skip = layers.Conv2D(channels, 1, stride, use_bias=False)(x) if stride > 1 else x
        return layers.ReLU()(layers.Add()([y, skip]))

    image = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(32, 3, padding="same", use_bias=False)(image)))
    x = block(block(block(x, 32, 1), 64, 2), 128, 2)
    return keras.Model(image, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))


def encoder() -> keras.Model:
    tokens = keras.Input((64,))
    x = layers.Embedding(1000, 128)(tokens)
    for _ in range(2):
        x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(4, 32)(x, x)]))
        ffn = layers.Dense(128)(layers.Dense(256, activation="relu")(x))
        x = layers.LayerNormalization()(layers.Add()([x, ffn]))
    return keras.Model(tokens, layers.Dense(5)(layers.GlobalAveragePooling1D()(x)))


def models() -> list[tuple[str, keras.Model, Any]]:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    return [
        ("MLP 784-512-512-10", mlp(), lambda n: rng.normal(size=(n, 784)).astype(np.float32)),
        ("ResNet-style CNN 32x32x3", resnet(), lambda n: rng.normal(size=(n, 32, 32, 3)).astype(np.float32)),
        ("Transformer encoder, 64 tokens", encoder(), lambda n: rng.integers(0, 1000, (n, 64)).astype(np.float32)),
    ]


def bench(name: str, model: keras.Model, data: Any, folder: Path, quick: bool) -> dict[str, Any]:
    slug = name.split()[0].lower()
    path, native = folder / f"{slug}.mle", folder / f"{slug}.keras"
    mle.export_model(model, path)
    model.save(native)
    r: dict[str, Any] = {"model": name, "mle_bytes": path.stat().st_size, "keras_bytes": native.stat().st_size}
    mle.load_model(path)
    r["load_ms"] = per_call(lambda: mle.load_model(path), 1.0) * 1e3
    r["keras_load_ms"] = per_call(lambda: keras.models.load_model(native), 2.0, repeat=3) * 1e3
    runtime = mle.load_model(path)
    budget = 0.5 if quick else 2.0
    for n in BATCHES:
        x = data(n)
        calls = {
            "mle": lambda x=x: runtime.run([x]),
            "keras_predict": lambda x=x, n=n: model.predict(x, batch_size=n, verbose=0),
            "keras_call": lambda x=x: model(x, training=False),
        }
        record_rows_per_second(r, n, calls, budget, 3 if n == BATCHES[-1] else 5)
    return r


def targets(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        for n in BATCHES[1:]:
            ratio = r[f"mle_rows_s_{n}"] / r[f"keras_predict_rows_s_{n}"]
            verdict = "MET" if ratio >= 1 else "MISSED"
            out.append(f"{r['model']} at batch {n:,}: {ratio:.2f}x Keras predict (target >= 1x) -> {verdict}")
    return out


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# Keras networks ({meta['date']}, {meta['machine']}, Keras {meta['keras']} on {meta['backend']})",
        "",
        "Sizes in bytes; load in ms (in-process, after warm-up); throughput in rows/s (float32).",
        "",
        "| model | .mle | .keras | .mle / .keras | load | keras.models.load_model |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['mle_bytes']:,} | {r['keras_bytes']:,} | {r['mle_bytes'] / r['keras_bytes']:.3f} "
            f"| {r['load_ms']:.2f} | {r['keras_load_ms']:.2f} |"
        )
    lines += [
        "",
        "| model | batch | mle | Keras predict | Keras call | mle / predict | mle / call |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for n in BATCHES:
            ours, predict, call = (r[f"{w}_rows_s_{n}"] for w in ("mle", "keras_predict", "keras_call"))
            lines.append(
                f"| {r['model']} | {n:,} | {ours:,.0f} | {predict:,.0f} | {call:,.0f} | {ours / predict:.2f}x "
                f"| {ours / call:.2f}x |"
            )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in meta["targets"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (a smoke run; results not kept)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, data in models():
            print(f"benchmarking {name} ...", flush=True)
            results.append(bench(name, model, data, Path(tmp), args.quick))
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "targets": targets(results),
    }
    text = markdown(results, meta)
    print(text)
    if not args.quick:
        save_results("keras", meta, results, text)


if __name__ == "__main__":
    main()
