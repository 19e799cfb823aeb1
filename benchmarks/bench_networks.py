"""PyTorch networks against torch eager and ONNX Runtime, and torch.save/torch.load, side by side in one run.

    python3 benchmarks/bench_networks.py [--quick] [--device cuda]

An MLP (784-512-512-10), a ResNet-style CNN on 32x32x3 images and a Transformer encoder classifier over
64 tokens: throughput (rows/s) at batch 1, 64 and 1,024, torch with as many threads as XLA uses here;
file size and load time against torch.save / torch.load of the module. Writes
benchmarks/results/networks.json and networks.md. Targets (issue 5, CPU): >= torch eager's throughput at
batch >= 64, batch-1 latency within 1.5x of ONNX Runtime's. Keras: bench_keras.py.

``--device cuda`` runs the same comparisons on a GPU (mle on device="cuda", torch and ONNX Runtime on CUDA
where they have it) and writes networks_cuda.json / .md. It has not been run yet (no GPU lent).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_linear import machine, per_call, record_rows_per_second, save_results
from torch import nn

import mle_runtime as mle

BATCHES = (1, 64, 1024)


class Residual(nn.Module):
    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        out = channels * stride
        self.body = nn.Sequential(
            nn.Conv2d(channels, out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
            nn.Conv2d(out, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.skip = nn.Conv2d(channels, out, 1, stride, bias=False) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        Residual(32, 1),
        Residual(32, 2),
        Residual(64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 128)
        layer = nn.TransformerEncoderLayer(128, 4, 256, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(128, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(self.embed(tokens)).mean(dim=1))


def models() -> list[tuple[str, nn.Module, tuple[int, ...], Any]]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return [
        ("MLP 784-512-512-10", mlp.eval(), (1, 784), lambda n: torch.randn(n, 784)),
        ("ResNet-style CNN 32x32x3", resnet().eval(), (1, 3, 32, 32), lambda n: torch.randn(n, 3, 32, 32)),
        ("Transformer encoder, 64 tokens", Encoder().eval(), (1, 64), lambda n: torch.randint(0, 1000, (n, 64))),
    ]


def onnx_session(model: nn.Module, example: torch.Tensor, folder: Path, device: str) -> tuple[Any, str]:
    """ONNX Runtime on torch.onnx's export (dynamic batch); the reason where it cannot be had."""
    try:
        import onnxruntime as ort

        path = folder / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}}
            )
    except Exception as e:  # (a model the exporter cannot take: reported, not fatal)
        return None, f"export failed: {type(e).__name__}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return None, "no CUDA provider"
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)
    return (lambda x: session.run(None, {"x": x})), "ok"


def bench(
    name: str, model: nn.Module, shape: tuple[int, ...], data: Any, folder: Path, quick: bool, device: str
) -> dict[str, Any]:
    slug = name.split()[0].lower()
    path = folder / f"{slug}.mle"
    mle.export_model(model, path, input_shape=shape)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    saved = buffer.getvalue()
    r: dict[str, Any] = {"model": name, "mle_bytes": path.stat().st_size, "torch_bytes": len(saved)}
    mle.load_model(path)
    r["load_ms"] = per_call(lambda: mle.load_model(path), 1.0) * 1e3
    r["torch_load_ms"] = per_call(lambda: torch.load(io.BytesIO(saved), weights_only=False), 1.0) * 1e3
    runtime = mle.load_model(path, device=device)
    session, r["onnx"] = onnx_session(model, data(2), folder, device)
    model = model.to(device)
    budget = 0.5 if quick else 2.0
    for n in BATCHES:
        x = data(n)
        xn = x.numpy()
        xf = xn.astype(np.float32)
        on_device = x.to(device)

        def eager(x: torch.Tensor = on_device) -> Any:
            with torch.inference_mode():
                out = model(x)
                return out.cpu() if device == "cuda" else out  # (waits for the GPU, as the others do)

        calls = {"mle": lambda xf=xf: runtime.run([xf]), "torch": eager}
        if session is not None:
            calls["onnx"] = lambda xn=xn: session(xn)
        record_rows_per_second(r, n, calls, budget, 3 if n == BATCHES[-1] else 5)
    return r


def targets(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        for n in BATCHES[1:]:
            ratio = r[f"mle_rows_s_{n}"] / r[f"torch_rows_s_{n}"]
            verdict = "MET" if ratio >= 1 else "MISSED"
            out.append(f"{r['model']} at batch {n:,}: {ratio:.2f}x torch eager (target >= 1x) -> {verdict}")
        if "onnx_rows_s_1" in r:
            latency = r["onnx_rows_s_1"] / r["mle_rows_s_1"]
            verdict = "MET" if latency <= 1.5 else "MISSED"
            out.append(f"{r['model']} at batch 1: latency {latency:.2f}x ONNX Runtime's (target <= 1.5x) -> {verdict}")
        else:
            out.append(f"{r['model']} at batch 1: ONNX Runtime {r['onnx']} -> NOT MEASURED")
    return out


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# PyTorch networks ({meta['date']}, {meta['machine']}, torch threads: {meta['torch_threads']})",
        "",
        "Sizes in bytes; load in ms (in-process, after warm-up); throughput in rows/s (float32).",
        "",
        "| model | .mle | torch.save | .mle / torch | load | torch.load |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['mle_bytes']:,} | {r['torch_bytes']:,} | {r['mle_bytes'] / r['torch_bytes']:.3f} "
            f"| {r['load_ms']:.2f} | {r['torch_load_ms']:.2f} |"
        )
    lines += [
        "",
        "| model | batch | mle | torch eager | ONNX Runtime | mle / torch | mle / ORT |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for n in BATCHES:
            ours, eager, onnx = r[f"mle_rows_s_{n}"], r[f"torch_rows_s_{n}"], r.get(f"onnx_rows_s_{n}")
            cells = (r["onnx"], "-") if onnx is None else (f"{onnx:,.0f}", f"{ours / onnx:.2f}x")
            lines.append(
                f"| {r['model']} | {n:,} | {ours:,.0f} | {eager:,.0f} | {cells[0]} | {ours / eager:.2f}x | {cells[1]} |"
            )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in meta["targets"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (a smoke run; results not kept)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch has no CUDA (install a CUDA build of torch on the GPU machine)")
    torch.set_num_threads(os.cpu_count() or 1)  # XLA's CPU client uses every core
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, shape, data in models():
            print(f"benchmarking {name} ...", flush=True)
            results.append(bench(name, model, shape, data, Path(tmp), args.quick, args.device))
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{machine()}, {args.device}",
        "torch_threads": torch.get_num_threads(),
        "targets": targets(results),
    }
    text = markdown(results, meta)
    print(text)
    if not args.quick:
        save_results("networks" if args.device == "cpu" else f"networks_{args.device}", meta, results, text)


if __name__ == "__main__":
    main()
