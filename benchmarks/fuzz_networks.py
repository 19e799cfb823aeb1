"""PyTorch networks drawn at random from the layers and options the converter reads, held to torch.

    python3 benchmarks/fuzz_networks.py [--runs 300] [--seed 0] [--only spatial] [--timeout 120]

tests/test_pytorch.py holds a network per family and a layer per option. Options interact (a dilated
strided convolution after a ceil-mode pooling, a circular padding before a grouped convolution, a
normalization over one channel), and shapes decide which paths a layer takes. Each run draws a family and
a stack of layers with their options, keeping each layer only where torch's own forward takes the shape
it gets:

- spatial: 1-, 2- and 3-D inputs through convolutions (stride, padding numbers, "same" and "valid", padding
  modes, dilation, groups), transposed convolutions (output padding, groups, dilation), max and average
  pooling (ceil mode, padding, dilation, count_include_pad, divisor_override), adaptive pooling, batch,
  group and instance normalization, explicit padding in each mode, upsampling, pixel shuffles, reductions
  that keep their axis, residual additions, concatenations and products, every activation module;
- sequence: feature or token inputs (an embedding, with a padding index or a max norm) through LSTM and GRU
  (layers, bidirectional, batch first or not), Transformer encoder layers (norm first, activations),
  self-attention, layer normalization and convolutions over time, pooled over time or read at its last step;
- tensor: rows through linear layers and tensor operations (chunks, permutes, reshapes, matrix products,
  einsum, cumulative sums, sorting, top-k values, flips, where, clamps and elementwise math).

The module is exported (``input_shape`` of one row, a dynamic batch) and run at batches 1 and 5 in float32;
its float64 copy is exported and run in float64 precision; where it holds a weight that ``quantize="int8"``
quantizes, it is exported so too, and held to torch run on the same weights quantized in torch's layout
(one scale per output channel: a convolution's first axis, a transposed one's second, a matrix's rows, an
embedding's rows), which catches a scale along any other axis. Answers within 1e-5 of torch's (absolute,
scaled by the output's magnitude) in float32 and int8 and 1e-12 in float64; where ours is not, it passes
when it is within 1e-5 of the float64 answer and no further from it than torch's own float32 answer (a
normalization of near-constant values, say), and the run is listed as such. An export the converter
refuses is listed with its message (a refusal is not a difference); a file that exports and then fails to
load or run is one. Writes
benchmarks/results/networks_fuzz.json and .md; exit 1 on any difference. Its first runs found
``padding="valid"`` convolutions in 2 and 3 dimensions exported into files that failed to load, and
layer norms, group norms and variances of equal values (a row a clamp saturated) off by a mean's rounding
over sqrt(eps): 4e-5 of a layer norm's output, where torch's is exact.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fuzzing import NetworkRun, chance, fuzz_networks, integer, network_verdict, pick, said
from torch import nn
from torch.nn import functional as F

FAMILIES = ("spatial", "sequence", "tensor")
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
MAX_ACTIVATION = 200_000  # elements of one row's activation a drawn layer may make


class Function(nn.Module):
    """A tensor function as a layer, named for the results."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class Merge(nn.Module):
    """``x`` and ``body(x)`` added, multiplied or concatenated along the channels."""

    def __init__(self, body: nn.Module, how: str) -> None:
        super().__init__()
        self.body, self.how = body, how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.how == "add" else x * y if self.how == "multiply" else torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return self.how


class Recurrent(nn.Module):
    """An LSTM or GRU on (batch, time, features), its batch first or not inside."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.rnn.batch_first
        out = self.rnn(x if first else x.transpose(0, 1))[0]
        return out if first else out.transpose(0, 1)


class OverTime(nn.Module):
    """A convolution along the time axis of (batch, time, features)."""

    def __init__(self, convolution: nn.Module) -> None:
        super().__init__()
        self.convolution = convolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolution(x.transpose(1, 2)).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x if self.attention.batch_first else x.transpose(0, 1)
        out = self.attention(q, q, q, need_weights=False)[0]
        return out if self.attention.batch_first else out.transpose(0, 1)


def activation(rng: np.random.Generator, channels: int) -> nn.Module:
    u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
    makers: list[Callable[[], nn.Module]] = [
        nn.ReLU,
        nn.ReLU6,
        lambda: nn.LeakyReLU(u(0, 0.3)),
        lambda: nn.ELU(u(0.5, 2)),
        nn.SELU,
        lambda: nn.CELU(u(0.5, 2)),
        nn.GELU,
        lambda: nn.GELU("tanh"),
        nn.SiLU,
        nn.Mish,
        nn.Hardswish,
        nn.Hardsigmoid,
        lambda: nn.Hardtanh(-u(0, 2), u(0.1, 2)),
        nn.Sigmoid,
        nn.Tanh,
        lambda: nn.Softplus(u(0.5, 3), u(1, 20)),
        nn.Softsign,
        nn.LogSigmoid,
        nn.Tanhshrink,
        lambda: nn.Softshrink(u(0, 1)),
        lambda: nn.Hardshrink(u(0, 1)),
        lambda: nn.Threshold(float(rng.normal()), float(rng.normal())),
        nn.PReLU,
        lambda: nn.PReLU(channels),
        lambda: nn.Softmax(1),
        lambda: nn.LogSoftmax(1),
        lambda: nn.Softmin(1),
        nn.RReLU,
        lambda: nn.GLU(1) if channels % 2 == 0 else nn.Identity(),
    ]
    return pick(rng, makers)()


def spatial_layer(rng: np.random.Generator, c: int, dims: int) -> nn.Module:
    """A layer for (batch, c, *spatial) inputs of ``dims`` spatial axes."""
    conv, conv_t = (
        (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1],
        (nn.ConvTranspose1d, nn.ConvTranspose2d)[min(dims, 2) - 1],
    )
    max_pool, avg_pool = (
        (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[dims - 1],
        (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[dims - 1],
    )
    kinds = ["conv", "conv", "conv_t", "max_pool", "avg_pool", "batch_norm", "group_norm", "instance_norm"]
    kinds += ["activation", "activation", "adaptive", "pad", "merge", "upsample", "dropout", "reduce", "pixel"]
    kind, k = pick(rng, kinds), integer(rng, 1, 3)
    groups = pick(rng, [g for g in (1, 2, 3, 4, c) if c % g == 0])
    if kind == "conv":
        padding = pick(rng, [0, 1, 2, "same", "valid"])
        return conv(
            c,
            groups * integer(rng, 1, 3),
            k,
            stride=1 if padding == "same" else integer(rng, 1, 2),
            padding=padding,
            dilation=integer(rng, 1, 2),
            groups=groups,
            bias=chance(rng, 0.5),
            padding_mode=pick(rng, ["zeros", "zeros", "reflect", "replicate", "circular"]),
        )
    if kind == "conv_t" and dims <= 2:
        stride, dilation = integer(rng, 1, 2), integer(rng, 1, 2)
        return conv_t(
            c,
            groups * integer(rng, 1, 2),
            k,
            stride=stride,
            padding=integer(rng, 0, 1),
            output_padding=integer(rng, 0, max(stride, dilation) - 1) if chance(rng, 0.5) else 0,
            groups=groups,
            dilation=dilation,
            bias=chance(rng, 0.5),
        )
    if kind == "max_pool":
        return max_pool(
            k + 1,
            stride=integer(rng, 1, 2),
            padding=integer(rng, 0, (k + 1) // 2),
            dilation=integer(rng, 1, 2),
            ceil_mode=chance(rng, 0.5),
        )
    if kind == "avg_pool":
        extra = {"divisor_override": integer(rng, 1, 4)} if dims > 1 and chance(rng, 0.3) else {}
        return avg_pool(
            k + 1,
            stride=integer(rng, 1, 2),
            padding=integer(rng, 0, (k + 1) // 2),
            ceil_mode=chance(rng, 0.5),
            count_include_pad=chance(rng, 0.5),
            **extra,
        )
    if kind == "batch_norm":
        norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dims - 1](
            c, eps=pick(rng, [1e-5, 1e-3]), affine=chance(rng, 0.8)
        )
        with torch.no_grad():  # (statistics away from (0, 1), so that the normalization shows)
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
        return norm
    if kind == "group_norm":
        return nn.GroupNorm(pick(rng, [g for g in (1, 2, c) if c % g == 0]), c, affine=chance(rng, 0.7))
    if kind == "instance_norm":
        return (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[dims - 1](c, affine=chance(rng, 0.5))
    if kind == "adaptive":
        pools = [(nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)]
        pools.append((nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d))
        return pick(rng, list(pools[dims - 1]))(integer(rng, 1, 5))
    if kind == "pad":
        mode, value = pick(rng, ["constant", "reflect", "replicate", "circular"]), float(rng.normal())
        pads = [integer(rng, 0, 2) for _ in range(2 * dims)]
        if mode == "constant":
            return Function(lambda x: F.pad(x, pads, value=value), f"pad {pads} with {value:.3g}")
        return Function(lambda x: F.pad(x, pads, mode=mode), f"pad {pads} {mode}")
    if kind == "merge":
        return Merge(nn.Sequential(conv(c, c, 3, padding=1), activation(rng, c)), pick(rng, ["add", "multiply", "cat"]))
    if kind == "upsample":
        modes = ["nearest", ("linear",), ("bilinear", "bicubic"), ("trilinear",)]
        mode = pick(rng, ["nearest", *modes[dims]])
        corners = {} if mode == "nearest" else {"align_corners": chance(rng, 0.5)}
        if chance(rng, 0.3):
            return nn.Upsample(size=integer(rng, 3, 12), mode=mode, **corners)
        return nn.Upsample(scale_factor=pick(rng, [2, 1.5, 3]), mode=mode, **corners)
    if kind == "dropout":
        return nn.Dropout(0.3)
    if kind == "reduce":
        return reduction(rng, integer(rng, 1, dims + 1), keep=True)
    if kind == "pixel" and dims == 2:
        return nn.PixelShuffle(2) if c % 4 == 0 and chance(rng, 0.5) else nn.PixelUnshuffle(2)
    return activation(rng, c)


def reduction(rng: np.random.Generator, dim: int, keep: bool) -> Function:
    how = pick(rng, ["mean", "amax", "amin", "sum", "std", "var", "norm", "logsumexp", "prod"])
    reductions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "mean": lambda x: x.mean(dim, keepdim=keep),
        "amax": lambda x: x.amax(dim, keepdim=keep),
        "amin": lambda x: x.amin(dim, keepdim=keep),
        "sum": lambda x: x.sum(dim, keepdim=keep),
        "std": lambda x: x.std(dim, keepdim=keep),
        "var": lambda x: x.var(dim, keepdim=keep, correction=0),
        "norm": lambda x: torch.linalg.vector_norm(x, 2, dim, keepdim=keep),
        "logsumexp": lambda x: torch.logsumexp(x, dim, keepdim=keep),
        "prod": lambda x: torch.tanh(x).prod(dim, keepdim=keep),
    }
    return Function(reductions[how], f"{how}(dim={dim}, keepdim={keep})")


def sequence_layer(rng: np.random.Generator, features: int) -> nn.Module:
    """A layer for (batch, time, features) inputs."""
    kind = pick(rng, ["lstm", "gru", "encoder", "attention", "layer_norm", "linear", "conv", "activation"])
    if kind in ("lstm", "gru"):
        rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(
            features,
            integer(rng, 2, 12),
            num_layers=integer(rng, 1, 2),
            bias=chance(rng, 0.8),
            batch_first=chance(rng, 0.5),
            bidirectional=chance(rng, 0.5),
        )
        return Recurrent(rnn)
    heads = pick(rng, [h for h in (1, 2, 4) if features % h == 0])
    if kind == "encoder":
        return nn.TransformerEncoderLayer(
            features,
            heads,
            integer(rng, 4, 32),
            dropout=0.1,
            activation=pick(rng, ["relu", "gelu"]),
            batch_first=True,
            norm_first=chance(rng, 0.5),
            bias=chance(rng, 0.8),
        )
    if kind == "attention":
        return SelfAttention(
            nn.MultiheadAttention(features, heads, bias=chance(rng, 0.8), batch_first=chance(rng, 0.5))
        )
    if kind == "layer_norm":
        return nn.LayerNorm(features, elementwise_affine=chance(rng, 0.7), bias=chance(rng, 0.7))
    if kind == "linear":
        return nn.Linear(features, integer(rng, 2, 16), bias=chance(rng, 0.7))
    if kind == "conv":
        return OverTime(nn.Conv1d(features, integer(rng, 2, 12), integer(rng, 1, 3), padding="same"))
    return activation(rng, 0)


def tensor_layer(rng: np.random.Generator, width: int) -> nn.Module:
    """A layer for (batch, width) inputs."""
    kind = pick(rng, ["linear", "linear", "activation", "chunks", "reshape", "einsum", "cumsum", "sort"])
    kind = pick(rng, [kind, "topk", "flip", "where", "clamp", "math", "norm", "merge"])
    if kind == "linear":
        return nn.Linear(width, integer(rng, 1, 24), bias=chance(rng, 0.7))
    if kind == "chunks" and width % 2 == 0:
        return Function(lambda x: torch.cat(list(reversed(x.chunk(2, dim=1))), dim=1), "chunks swapped")
    if kind == "reshape" and width % 2 == 0:
        return Function(lambda x: x.unflatten(1, (2, -1)).permute(0, 2, 1).flatten(1), "reshape, permute, flatten")
    if kind == "einsum" and width % 2 == 0:
        return Function(lambda x: torch.einsum("bij,bkj->bik", *[x.unflatten(1, (2, -1))] * 2).flatten(1), "einsum")
    if kind == "cumsum":
        return Function(lambda x: torch.cumsum(x, 1) / width, "cumsum")
    if kind == "sort":
        descending = chance(rng, 0.5)
        return Function(lambda x: torch.sort(x, 1, descending=descending)[0], f"sort (descending {descending})")
    if kind == "topk" and width > 1:
        k = integer(rng, 1, width)
        return Function(lambda x: torch.topk(x, k, 1)[0], f"top {k}")
    if kind == "flip":
        return Function(lambda x: torch.flip(x, [1]), "flip")
    if kind == "where":
        return Function(lambda x: torch.where(x > 0, x, torch.exp(x) - 1), "where")
    if kind == "clamp":
        low = float(rng.normal())
        return Function(lambda x: torch.clamp(x, low, low + 1), f"clamp({low:.3g}, {low + 1:.3g})")
    if kind == "math":
        name, fn = pick(
            rng,
            [
                ("abs", torch.abs),
                ("log1p |x|", lambda x: torch.log1p(torch.abs(x))),
                ("sqrt |x|", lambda x: torch.sqrt(torch.abs(x))),
                ("exp(-x^2)", lambda x: torch.exp(-x * x)),
                ("x^3", lambda x: torch.pow(x, 3)),
                ("erf", torch.erf),
                ("atan", torch.atan),
                ("sin", torch.sin),
                ("floor(4x)/4", lambda x: torch.floor(4 * x) / 4),
                ("remainder", lambda x: torch.remainder(x, 0.7)),
            ],
        )
        return Function(fn, name)
    if kind == "norm":
        return pick(rng, [nn.LayerNorm(width), nn.BatchNorm1d(width).eval()])
    if kind == "merge":
        return Merge(nn.Linear(width, width), pick(rng, ["add", "multiply", "cat"]))
    return activation(rng, width)


@dataclass
class Network:
    family: str
    module: nn.Module
    shape: tuple[int, ...]  # one row
    tokens: int = 0  # token inputs: the vocabulary's size (0: float inputs)

    def inputs(self, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        if self.tokens:
            return torch.randint(0, self.tokens, (n, *self.shape[1:]), generator=generator)
        return torch.randn((n, *self.shape[1:]), generator=generator, dtype=dtype)


def _stack(
    rng: np.random.Generator, x: torch.Tensor, draw: Callable[[torch.Tensor], nn.Module], count: int
) -> list[nn.Module]:
    """``count`` layers, each redrawn (up to ten times) until torch's forward takes the shape it gets and
    gives a tensor of the same rank, not empty and not too large."""
    layers: list[nn.Module] = []
    for _ in range(count):
        for _attempt in range(10):
            layer = draw(x).eval()
            try:
                with torch.no_grad():
                    y = layer(x)
            except Exception:  # (options this shape does not take: drawn again)
                continue
            if y.ndim == x.ndim and 0 < y[0].numel() <= MAX_ACTIVATION and min(y.shape[1:]) >= 1:
                layers.append(layer)
                x = y
                break
    return layers


def draw_network(rng: np.random.Generator, family: str) -> Network:
    torch.manual_seed(int(rng.integers(1 << 30)))
    if family == "spatial":
        dims = pick(rng, [1, 2, 2, 3])
        sizes = [(6, 20), (5, 14), (4, 7)][dims - 1]
        shape = (1, integer(rng, 1, 5), *[integer(rng, *sizes) for _ in range(dims)])
        x = torch.randn(shape)
        layers = _stack(rng, x, lambda x: spatial_layer(rng, x.shape[1], dims), integer(rng, 2, 6))
        network = Network(family, nn.Sequential(*layers), shape)
    elif family == "sequence":
        time_steps, features, vocabulary = integer(rng, 1, 9), pick(rng, [4, 8, 12]), 0
        layers = []
        if chance(rng, 0.5):
            vocabulary = integer(rng, 5, 40)
            options = pick(rng, [{}, {"padding_idx": 0}, {"max_norm": 1.0}])
            layers.append(nn.Embedding(vocabulary, features, **options))
        shape = (1, time_steps) if vocabulary else (1, time_steps, features)
        x = torch.randn(1, time_steps, features)
        layers += _stack(rng, x, lambda x: sequence_layer(rng, x.shape[2]), integer(rng, 1, 4))
        network = Network(family, nn.Sequential(*layers), shape, vocabulary)
    else:
        shape = (1, integer(rng, 1, 16))
        layers = _stack(rng, torch.randn(shape), lambda x: tensor_layer(rng, x.shape[1]), integer(rng, 2, 7))
        network = Network(family, nn.Sequential(*layers), shape)
    with torch.no_grad():
        out = network.module(network.inputs(1, torch.float32, 0))
    if family == "sequence":
        head = pick(rng, ["mean", "last", "max"])
        pool = {"mean": lambda h: h.mean(1), "last": lambda h: h[:, -1], "max": lambda h: h.amax(1)}[head]
        network.module.append(Function(pool, f"{head} over time"))
        out = pool(out)
    if chance(rng, 0.5):
        network.module.extend([nn.Flatten(), nn.Linear(out[0].numel(), integer(rng, 1, 8))])
    network.module.eval()
    return network


def _float64_answer(wide: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return wide(x).numpy()


def _int8_weights(module: nn.Module) -> nn.Module | None:
    """A copy of the module whose weights are those ``quantize="int8"`` stores, dequantized, each quantized
    per output channel in torch's layout; None when it has none to quantize."""
    from mle_runtime.compression import CompressionUtils
    from mle_runtime.converters.quantize import MIN_VALUES

    quantized, count = copy.deepcopy(module), 0
    with torch.no_grad():
        for layer in quantized.modules():
            for weight in layer.parameters(recurse=False):
                if weight.ndim < 2 or weight.numel() < MIN_VALUES:
                    continue
                axis = 1 if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
                q, scale, zero = CompressionUtils.quantize_weights_int8_per_channel(weight.numpy(), axis=axis)
                # (in float32, as the runtime widens them)
                f32 = np.float32
                weight.copy_(torch.from_numpy((q.astype(f32) - zero.astype(f32)) * scale.astype(f32)))
                count += 1
    return quantized if count else None


def one_run(index: int, seed: int, only: str, folder: Path) -> NetworkRun | None:
    import mle_runtime as mle

    family = FAMILIES[index % len(FAMILIES)]
    if only and only != family:
        return None
    rng = np.random.default_rng([seed, index])
    network = draw_network(rng, family)
    run = NetworkRun(index, family, " | ".join(" ".join(str(m).split()) for m in network.module))
    path = folder / "n.mle"
    try:
        mle.export_model(network.module, path, input_shape=network.shape)
    except Exception as e:  # (a refusal lists what the converter does not take)
        run.refused = said(e)
        return run
    wide = copy.deepcopy(network.module).double()
    for n in (1, 5):
        x = network.inputs(n, torch.float32, index * 10 + n)
        with torch.no_grad():
            expected = network.module(x).numpy()
        try:
            ours = mle.load_model(path).predict(x.numpy())
        except Exception as e:
            run.outcome[f"float32, batch {n}"] = f"run: {said(e)}"
            continue
        exact = functools.partial(_float64_answer, wide, x if network.tokens else x.double())
        run.outcome[f"float32, batch {n}"] = network_verdict(ours, expected, exact, TOLERANCE["float32"], "torch")
    quantized = _int8_weights(network.module)
    if quantized is not None:
        try:
            mle.export_model(network.module, path, input_shape=network.shape, quantize="int8")
            x = network.inputs(5, torch.float32, index * 10 + 7)
            with torch.no_grad():
                expected = quantized(x).numpy()
            ours = mle.load_model(path).predict(x.numpy())
            exact = functools.partial(_float64_answer, quantized.double(), x if network.tokens else x.double())
            run.outcome["int8"] = network_verdict(ours, expected, exact, TOLERANCE["float32"], "torch")
        except Exception as e:
            run.outcome["int8"] = f"run: {said(e)}"
    try:
        mle.export_model(wide, path, input_shape=network.shape)
        x = network.inputs(5, torch.float64, index * 10)
        with torch.no_grad():
            expected = wide(x).numpy()
        ours = mle.load_model(path, precision="float64").predict(x.numpy())
        run.outcome["float64"] = network_verdict(ours, expected, None, TOLERANCE["float64"], "torch")
    except Exception as e:
        run.outcome["float64"] = f"run: {said(e)}"
    return run


def main() -> int:
    torch.set_num_threads(1)
    return fuzz_networks(__doc__, FAMILIES, 300, one_run, "PyTorch", "networks_fuzz")


if __name__ == "__main__":
    sys.exit(main())
