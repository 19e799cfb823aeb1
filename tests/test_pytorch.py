"""PyTorch networks, defined here: captured with torch.export, run as jnp, compared with the module's
own eval() forward at batch sizes 1, 7 and 256."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import mle_runtime as mle
from mle_runtime.errors import UnsupportedModelError

BATCHES = (1, 7, 256)


class MLP(nn.Module):
    """Every activation the issue names, with dropout between."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(20, 32),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(32, 32),
            nn.LeakyReLU(0.1),
            nn.Linear(32, 32),
            nn.GELU(),
            nn.Linear(32, 32),
            nn.GELU(approximate="tanh"),
            nn.Linear(32, 32),
            nn.SiLU(),
            nn.Linear(32, 32),
            nn.Hardswish(),
            nn.Linear(32, 32),
            nn.Sigmoid(),
            nn.Linear(32, 32),
            nn.Tanh(),
            nn.Linear(32, 10),
        )
        self.head = nn.LogSoftmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(x))


class Residual(nn.Module):
    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * stride, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels * stride)
        self.conv2 = nn.Conv2d(channels * stride, channels * stride, 3, padding=1, padding_mode="reflect")
        self.bn2 = nn.BatchNorm2d(channels * stride)
        self.skip = nn.Conv2d(channels, channels * stride, 1, stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="replicate"), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Residual(8, 1), nn.MaxPool2d(3, 2, 1), Residual(8, 2), Residual(16, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1)), dim=-1)


class MobileNet(nn.Module):
    """Depthwise-separable blocks, dilation, average pooling, a transposed convolution, GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.Hardswish(),
            nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
            nn.Conv2d(16, 24, 1),
            nn.GroupNorm(4, 24),
            nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
            nn.ConvTranspose2d(24, 12, 3, stride=2, padding=1, output_padding=1),
            nn.Conv2d(12, 12, 3, padding=1, groups=4, padding_mode="circular"),
            nn.AdaptiveAvgPool2d((3, 2)),
        )
        self.fc = nn.Linear(12 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class Encoder(nn.Module):
    """A Transformer encoder classifier over token ids; attention by nn.MultiheadAttention inside the
    encoder layers, and a head that calls scaled_dot_product_attention itself."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.query = nn.Parameter(torch.randn(1, 2, 1, 8))
        self.fc = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens))  # (n, t, 16)
        keys = h.reshape(h.shape[0], h.shape[1], 2, 8).permute(0, 2, 1, 3)  # (n, heads, t, 8)
        pooled = nn.functional.scaled_dot_product_attention(self.query.expand(h.shape[0], -1, -1, -1), keys, keys)
        return self.fc(pooled.reshape(h.shape[0], 16))


class Recurrent(nn.Module):
    """A two-layer LSTM (batch first) into a GRU (time first), classified from the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, num_layers=2, batch_first=True)
        self.gru = nn.GRU(12, 8)
        self.fc = nn.Linear(8 + 12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, (h, _) = self.lstm(x)
        z, _ = self.gru(y.transpose(0, 1))
        return self.fc(torch.cat([z[-1], h[-1]], dim=1))


class Sequence1d(nn.Module):
    """Conv1d, BatchNorm1d, LayerNorm, slicing, matmul and bmm, concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.norm = nn.LayerNorm(8)
        self.proj = nn.Parameter(torch.randn(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.bn(self.conv(x)).permute(0, 2, 1))  # (n, t, 8)
        scores = torch.bmm(h @ self.proj, h.transpose(1, 2))[:, 1:-1, ::2]
        return torch.cat([scores.mean(dim=2), h[:, -1, :]], dim=1)


class Decoder(nn.Module):
    """A segmentation-style decoder: nearest and bilinear upsampling (by scale factor and to a size),
    F.normalize (a vector norm) and a per-channel standard deviation."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.up = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.down(x))  # (n, 6, 6, 5)
        h = F.interpolate(h, scale_factor=1.5, mode="nearest")
        h = self.up(F.interpolate(h, size=(11, 13), mode="bilinear", align_corners=False))
        h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
        spread = h.std(dim=(2, 3))
        return torch.cat([F.normalize(h.flatten(2), dim=-1).mean(dim=2), spread], dim=1)


class Bags(nn.Module):
    """EmbeddingBag (mean, with a padding index) beside a bidirectional GRU over the same token ids."""

    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(40, 8, mode="mean", padding_idx=0)
        self.embed = nn.Embedding(40, 6)
        self.gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(8 + 10, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.embed(tokens))
        return self.fc(torch.cat([self.bag(tokens), states[:, -1]], dim=1))


class Pools(nn.Module):
    """GroupNorm, SiLU, a transposed convolution, InstanceNorm (the batch's own statistics, in eval mode too),
    upsampling and adaptive max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2),
            nn.GroupNorm(2, 8),
            nn.SiLU(),
            nn.ConvTranspose2d(8, 4, 2, stride=2),
            nn.InstanceNorm2d(4, affine=True),
            nn.Upsample(scale_factor=2),
            nn.AdaptiveMaxPool2d((3, 2)),
            nn.Flatten(),
            nn.Linear(24, 5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Ranks(nn.Module):
    """Sorting and ranking ops: cumsum, sort, topk (values and indices, gathered), max/min over a dimension
    with their indices, var_mean, index_select, repeat, rounding and remainders, ELU-family activations, an
    argmax cast to float (torch.export adds a dtype assertion, which checks nothing at run time)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8 + 6 + 9, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.selu(self.fc(x)) + F.celu(x, 0.7) + F.elu(x)
        ranked, order = torch.sort(h, dim=1, descending=True)
        top, where = torch.topk(h, 3, dim=1)
        largest, at = torch.max(h, dim=1, keepdim=True)
        smallest, _ = torch.min(h, dim=1)
        var, mean = torch.var_mean(h, dim=1, keepdim=True)
        picked = torch.index_select(h, 1, torch.tensor([0, 7, 3])).repeat(1, 2)
        steps = torch.cumsum(ranked, dim=1) + torch.gather(h, 1, order).round() + torch.fmod(h, 0.3)
        extra = torch.cat([top, where.float(), at.float() + largest, smallest[:, None], var], dim=1)
        return self.head(torch.cat([steps, picked * torch.exp2(mean), extra], dim=1))


class Volumes(nn.Module):
    """A 3-D network: Conv3d, BatchNorm3d, max and average pooling in 3-D (ceil mode, padding not counted),
    adaptive average and max pooling in 3-D, LocalResponseNorm (ATen's avg_pool3d over the channels), a
    running product, a product over one dimension and any() over several dimensions."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(2, 6, 3, padding=1),
            nn.BatchNorm3d(6),
            nn.LocalResponseNorm(3),
            nn.MaxPool3d(2, ceil_mode=True),
            nn.ReLU(),
            nn.AvgPool3d(2, padding=1, count_include_pad=False),
        )
        self.head = nn.Linear(6 * 4 + 6 * 6 + 6 + 6 + 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        mean = F.adaptive_avg_pool3d(h, (2, 1, 2)).flatten(1)
        peak = F.adaptive_max_pool3d(h, (1, 3, 2)).flatten(1)
        hot = (h > 0.5).any(dim=(2, 3, 4)).float()
        product = torch.cumprod(torch.tanh(h.mean((2, 3, 4))), dim=1)
        depth_product = torch.tanh(h.amax((3, 4))).prod(dim=2)
        return self.head(torch.cat([mean, peak, hot, product, depth_product], dim=1))


class ChebyshevKAN(nn.Module):
    """A Kolmogorov-Arnold layer over Chebyshev polynomials of tanh(x) (as ChebyKAN builds one from
    torch.special), beside the other orthogonal polynomials, degrees as numbers and as a tensor."""

    def __init__(self, inputs: int = 8, outputs: int = 4, degree: int = 9) -> None:
        super().__init__()
        self.coefficients = nn.Parameter(torch.randn(inputs, outputs, degree + 1) / (inputs * (degree + 1)))
        self.register_buffer("degrees", torch.arange(inputs) % 4 + 1)
        self.degree = degree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(x)
        basis = torch.stack([torch.special.chebyshev_polynomial_t(t, n) for n in range(self.degree + 1)], dim=-1)
        s = torch.special
        others = [
            s.chebyshev_polynomial_u(t, 10),
            s.chebyshev_polynomial_v(t, self.degrees),
            s.chebyshev_polynomial_w(t, 3),
            s.shifted_chebyshev_polynomial_t(torch.sigmoid(x), 8),
            s.hermite_polynomial_h(t, 4) / 100,
            s.hermite_polynomial_he(x, self.degrees),
            s.laguerre_polynomial_l(x.abs(), 3),
            s.legendre_polynomial_p(t, 5),
        ]
        return torch.einsum("bid,iod->bo", basis, self.coefficients) + torch.cat(others, dim=1).mean(1, keepdim=True)


class Special(nn.Module):
    """nn.Bilinear, RReLU (eval: its mean slope), and the special functions of distribution heads."""

    def __init__(self) -> None:
        super().__init__()
        self.bilinear = nn.Bilinear(4, 3, 5)
        self.rrelu = nn.RReLU(0.1, 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive, y = x.abs() + 0.1, x.flip(1)
        special = [
            torch.lgamma(positive),
            torch.digamma(positive),
            torch.special.i0(x),
            torch.special.i0e(x),
            torch.special.i1(x),
            torch.special.i1e(x),
            torch.special.ndtri(torch.sigmoid(x)),
            torch.special.erfc(x),
            torch.mvlgamma(positive + 1, 2),
            torch.special.zeta(positive + 1, y.abs() + 0.5),
            torch.polygamma(1, positive + 1),
            torch.polygamma(2, positive + 0.5),
            torch.special.erfcx(x),
        ]
        pairs = [torch.copysign(x, y), torch.hypot(x, y), torch.nextafter(x, y), self.rrelu(x)]
        return torch.cat([*special, *pairs, self.bilinear(x[:, :4], x[:, 4:7])], dim=1)


def _randomize_statistics(model: nn.Module) -> nn.Module:
    """Running statistics far from (0, 1), so that batch normalization is exercised."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) * 2 - 1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def _floats(*shape: int) -> Callable[[int], torch.Tensor]:
    return lambda n: torch.randn(n, *shape, generator=torch.Generator().manual_seed(n))


def _tokens(n: int) -> torch.Tensor:
    return torch.randint(0, 40, (n, 9), generator=torch.Generator().manual_seed(n))


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {
    "mlp": (MLP, _floats(20)),
    "resnet": (ResNet, _floats(3, 32, 32)),
    "mobilenet": (MobileNet, _floats(3, 24, 20)),
    "transformer": (Encoder, _tokens),
    "lstm-gru": (Recurrent, _floats(11, 6)),
    "conv1d-bmm": (Sequence1d, _floats(4, 15)),
    "decoder": (Decoder, _floats(3, 12, 10)),
    "bags-bidirectional-gru": (Bags, _tokens),
    "pools": (Pools, _floats(3, 17, 15)),
    "ranks": (Ranks, _floats(8)),
    "volumes": (Volumes, _floats(2, 6, 7, 5)),
    "special-functions": (Special, _floats(8)),
    "chebyshev-kan": (ChebyshevKAN, _floats(8)),
}


def _exported(name: str, folder: Path) -> tuple[nn.Module, Callable[[int], torch.Tensor], Path]:
    make, data = MODELS[name]
    torch.manual_seed(0)
    model = _randomize_statistics(make())
    path = folder / f"{name}.mle"
    result = mle.export_model(model, path, input_shape=tuple(data(1).shape))
    assert result["success"]
    return model, data, path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_the_eval_forward(name: str, tmp_path: Path) -> None:
    model, data, path = _exported(name, tmp_path)
    runtime = mle.load_model(path)
    # Each weight stored once, beside a few constants: torch.export captures an RNN step by step, each step
    # transposing its weights again, and the file held them once per step (an LSTM over 50 steps: 29x the
    # size of torch.save's).
    values = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    assert runtime.get_model_info()["num_parameters"] <= values + 16
    for n in BATCHES:
        x = data(n)
        with torch.no_grad():
            want = model(x).numpy()
        got = runtime.predict(x.numpy())
        assert got.shape == want.shape
        scale = max(float(np.abs(want).max()), 1e-30)
        err = float(np.abs(got - want).max()) / scale
        assert err <= 1e-5, f"{name} at batch {n}: error {err:.3g} of the output's magnitude"


@pytest.mark.parametrize(
    "conv, shape",
    [
        (nn.Conv1d(4, 6, 5, stride=2, padding=2), (1, 4, 30)),
        (nn.Conv2d(6, 12, 3, padding=1, groups=3, dilation=2), (1, 6, 11, 13)),
        (nn.Conv3d(2, 4, (3, 1, 2)), (1, 2, 5, 6, 7)),
        # padding="valid" is captured as one padding for every axis ([0])
        (nn.Conv1d(3, 3, 2, stride=2, padding="valid", dilation=2), (1, 3, 17)),
        (nn.Conv2d(4, 6, 2, stride=2, padding="valid", dilation=2, groups=2), (1, 4, 9, 10)),
        (nn.Conv3d(1, 3, 1, padding="valid", dilation=2, bias=False), (1, 1, 4, 5, 6)),
    ],
)
def test_convolution_kernels_are_stored_spatial_axes_first(
    conv: nn.Module, shape: tuple[int, ...], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    conv = conv.eval()
    mle.export_model(conv, tmp_path / "c.mle", input_shape=shape)
    runtime = mle.load_model(tmp_path / "c.mle")
    (kernel,) = [a for a in runtime._require().tensors.values() if a.ndim == conv.weight.ndim]
    np.testing.assert_array_equal(kernel, np.moveaxis(conv.weight.detach().numpy(), (0, 1), (-1, -2)))
    x = torch.randn(5, *shape[1:])
    with torch.no_grad():
        want = conv(x).numpy()
    np.testing.assert_allclose(runtime.predict(x.numpy()), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


class NormsOfEqualValues(nn.Module):
    """Each normalization and the variance, on groups whose values are all equal."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.LayerNorm(24)
        self.group = nn.GroupNorm(2, 4)
        self.instance = nn.InstanceNorm1d(4, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = x.unflatten(1, (4, 6))
        parts = [self.layer(x), self.group(grouped).flatten(1), self.instance(grouped).flatten(1)]
        return torch.cat([*parts, 1 + torch.var(grouped, dim=2), torch.std(x, dim=1, keepdim=True)], dim=1)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_norms_of_equal_values_are_their_bias(precision: str, tmp_path: Path) -> None:
    """Equal values deviate from their mean by exactly 0, so a norm of them is its bias: a mean's rounding,
    scaled by 1 / sqrt(eps), made a layer norm 4e-5 off in float32 where torch's is exact. Held to the
    module in float64 (torch's float32 group and instance norms fold the mean into their affine terms and
    are off by up to 2e-2 themselves; its layer norm, variance and std are exact)."""
    torch.manual_seed(0)
    model = NormsOfEqualValues().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)
    wide = copy.deepcopy(model).double()
    mle.export_model(model if precision == "float32" else wide, tmp_path / "norms.mle", input_shape=(1, 24))
    x = torch.tensor([1.59, 0.1, 3.3, -7.77, 1e4 / 3, 0.0])[:, None].repeat(1, 24)
    with torch.no_grad():
        want = wide(x.double()).numpy()
    got = mle.load_model(tmp_path / "norms.mle", precision=precision).predict(x.numpy().astype(precision))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_float64_network_matches_in_float64_mode(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _randomize_statistics(ResNet()).double()
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 3, 16, 16))
    x = torch.randn(7, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        want = model(x).numpy()
    got = mle.load_model(tmp_path / "m.mle", precision="float64").predict(x.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"scores": h, "norm": torch.linalg.vector_norm(h, dim=1)}


def test_outputs_of_a_returned_dict_keep_their_keys(tmp_path: Path) -> None:
    model = TwoHeads().eval()
    mle.export_model(model, tmp_path / "heads.mle", input_shape=(1, 6))
    runtime = mle.load_model(tmp_path / "heads.mle")
    assert [o["name"] for o in runtime.get_model_info()["outputs"]] == ["scores", "norm"]
    x = torch.randn(5, 6)
    with torch.no_grad():
        want = model(x)
    for got, key in zip(runtime.run([x.numpy()]), ["scores", "norm"], strict=True):
        np.testing.assert_allclose(got, want[key].numpy(), rtol=1e-5, atol=1e-6)


def test_a_model_in_train_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"training mode.*model\.eval\(\)"):
        mle.export_model(MLP().train(), tmp_path / "m.mle", input_shape=(1, 20))
    assert not (tmp_path / "m.mle").exists()


class OneHot(nn.Module):
    """Token ids embedded (with position embeddings of an arange, which need no check), bagged and one-hot
    encoded (F.one_hot: torch.export keeps its check of the ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 3)
        self.position = nn.Embedding(4, 3)
        self.bag = nn.EmbeddingBag(10, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(ids) + self.position(torch.arange(ids.shape[1]))
        return torch.cat([embedded.sum(1), self.bag(ids), F.one_hot(ids[:, 0], 10).float()], dim=1)


class Renormed(nn.Module):
    """nn.Embedding(max_norm=...): the rows a batch reads renormalized before the lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 6, max_norm=1.5)
        self.head = nn.Linear(6, 2)
        with torch.no_grad():
            self.embedding.weight.mul_(3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).mean(1))


def test_an_embedding_with_a_max_norm_renormalizes_the_rows_it_reads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Renormed().eval()
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 5))
    runtime = mle.load_model(tmp_path / "m.mle")
    for n in BATCHES:
        ids = torch.randint(0, 30, (n, 5), generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            want = model(ids).numpy()
        np.testing.assert_allclose(runtime.predict(ids.numpy()), want, rtol=1e-5, atol=1e-6)


def test_ids_the_module_would_refuse_raise(tmp_path: Path) -> None:
    model = OneHot().eval()
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 4))
    runtime = mle.load_model(tmp_path / "m.mle")
    ids = np.array([[1, 2, 3, 4], [9, 0, 0, 1]])
    np.testing.assert_allclose(runtime.run([ids])[0], model(torch.as_tensor(ids)).detach().numpy(), atol=1e-6)
    for bad, row in ((10, 0), (-1, 1)):  # (torch raises IndexError for both)
        wrong = ids.copy()
        wrong[row, 0] = bad
        with pytest.raises(IndexError):
            model(torch.as_tensor(wrong))
        with pytest.raises(ValueError, match=rf"outside 0..9 .*\(rows \[{row}\]\)"):
            runtime.run([wrong])
    bag = nn.EmbeddingBag(10, 2).eval()  # (its ids reach ATen flattened: the whole batch raises)
    mle.export_model(bag, tmp_path / "bag.mle", input_shape=(1, 4))
    wrong = ids.copy()
    wrong[1, 2] = 10
    with pytest.raises(ValueError, match=r"outside 0..9 .*\(rows \[0, 1\]\)"):
        mle.load_model(tmp_path / "bag.mle").run([wrong])


class Unsupported(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x) + torch.special.modified_bessel_k0(x.abs() + 1) + torch.special.airy_ai(x)


class SequenceFirst(nn.Module):
    """nn.MultiheadAttention without batch_first: it attends along dimension 0, which the runtime batches."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


class BatchSoftmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=0)


@pytest.mark.parametrize("model", [SequenceFirst, BatchSoftmax])
def test_a_module_mixing_the_rows_of_a_batch_is_refused(model: type[nn.Module], tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="depends on the other rows of the batch"):
        mle.export_model(model().eval(), tmp_path / "m.mle", input_shape=(1, 3, 8))
    assert not (tmp_path / "m.mle").exists()


class GridSample(nn.Module):
    def __init__(self, mode: str, padding: str, align: bool) -> None:
        super().__init__()
        self.mode, self.padding, self.align = mode, padding, align

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, mode=self.mode, padding_mode=self.padding, align_corners=self.align)


class SpatialTransformer(nn.Module):
    """A localisation layer's affine transform, its sampling grid, and the image sampled there."""

    def __init__(self) -> None:
        super().__init__()
        self.localise = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.localise(x).view(-1, 2, 3) * 1.5
        grid = F.affine_grid(theta, [x.shape[0], 3, 6, 5], align_corners=False)
        return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample(mode: str, padding: str, align: bool, tmp_path: Path) -> None:
    """Points inside and outside [-1, 1], on pixel centres and edges, halfway between two pixels."""
    torch.manual_seed(0)
    x, grid = torch.randn(7, 3, 8, 8), torch.rand(7, 4, 9, 2) * 3 - 1.5
    grid[0, 0, :4] = torch.tensor([[1.0, -1.0], [0.125, 0.5], [-0.125, 0.0625], [1.25, -1.5]])
    model = GridSample(mode, padding, align).eval()
    mle.export_model(model, tmp_path / "m.mle", example_inputs=(x[:1], grid[:1]))
    with torch.no_grad():
        want = model(x, grid).numpy()
    got = mle.load_model(tmp_path / "m.mle").run([x.numpy(), grid.numpy()])[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_spatial_transformer(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model, x = SpatialTransformer().eval(), torch.randn(9, 3, 8, 8)
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 3, 8, 8))
    with torch.no_grad():
        want = model(x).numpy()
    for n in (1, 9):
        got = mle.load_model(tmp_path / "m.mle").run([x[:n].numpy()])[0]
        np.testing.assert_allclose(got, want[:n], rtol=0, atol=1e-5 * np.abs(want).max())
    with pytest.raises(UnsupportedModelError, match="bicubic"):
        mle.export_model(
            GridSample("bicubic", "zeros", False).eval(),
            tmp_path / "b.mle",
            example_inputs=(x[:1], torch.zeros(1, 2, 2, 2)),
        )


def test_a_random_activation_is_refused(tmp_path: Path) -> None:
    class Noisy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.rrelu(x, training=True)

    with pytest.raises(UnsupportedModelError, match="random slope"):
        mle.export_model(Noisy().eval(), tmp_path / "m.mle", input_shape=(1, 5))


def test_every_missing_op_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        mle.export_model(Unsupported().eval(), tmp_path / "m.mle", input_shape=(1, 5))
    for op in ("aten.special_bessel_j0", "aten.special_modified_bessel_k0", "aten.special_airy_ai"):
        assert op in str(info.value)


def test_gradients_with_respect_to_the_inputs_match_autograd(tmp_path: Path) -> None:
    import jax
    import jax.numpy as jnp

    model, data, path = _exported("mlp", tmp_path)
    x = data(7)
    weights = torch.linspace(-1, 1, 10)
    xt = x.clone().requires_grad_(True)
    (model(xt) * weights).sum().backward()
    fn, params = mle.load_model(path).as_jax()
    grad = jax.grad(lambda v: jnp.sum(fn(params, v)["output"] * jnp.asarray(weights.numpy())))(jnp.asarray(x.numpy()))
    want = xt.grad.numpy()
    np.testing.assert_allclose(np.asarray(grad), want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_needs_an_input_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        mle.export_model(MLP().eval(), tmp_path / "m.mle")


def _trained_digits_classifier() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """An MLP trained for a few epochs on scikit-learn's digits; the held-out third to score it on."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    n = len(X) * 2 // 3
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(X[:n]), torch.from_numpy(y[:n])
    for _ in range(40):
        for i in range(0, n, 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xs[i : i + 64]), ys[i : i + 64]).backward()
            optimizer.step()
    return model.eval(), X[n:], y[n:]


@pytest.mark.parametrize(("mode", "least_reduction"), [("fp16", 1.9), ("int8", 3.5)])
def test_quantized_weights_keep_a_trained_model_accurate(mode: str, least_reduction: float, tmp_path: Path) -> None:
    model, X, y = _trained_digits_classifier()
    with torch.no_grad():
        reference = model(torch.from_numpy(X)).numpy()
    accuracy = float(np.mean(reference.argmax(1) == y))
    assert accuracy > 0.9  # (a trained model, not random weights)
    plain = mle.export_model(model, tmp_path / "plain.mle", input_shape=(1, 64))
    result = mle.export_pytorch_model(model, tmp_path / "q.mle", input_shape=(1, 64), quantize=mode)
    report = result["quantization"]
    assert report["mode"] == mode and report["tensors"] == 3
    assert report["size_reduction"] >= least_reduction
    assert result["file_size_bytes"] < plain["file_size_bytes"] / (least_reduction * 0.85)
    logits = mle.load_model(tmp_path / "q.mle").predict(X)
    assert abs(float(np.mean(logits.argmax(1) == y)) - accuracy) <= 0.01
    bound = 2e-3 if mode == "fp16" else 5e-2
    assert float(np.abs(logits - reference).max()) <= bound * float(np.abs(reference).max())


def _flat_channels(axis: int) -> Callable[[np.ndarray], np.ndarray]:
    """An output's values channel by channel, (channels, values), the channels on ``axis``."""
    return lambda out: np.moveaxis(out, axis, 0).reshape(out.shape[axis], -1)


@pytest.mark.parametrize(
    ("make", "weight_axis", "example", "channels"),
    [
        (lambda: nn.Conv2d(4, 8, 3, bias=False), 0, lambda: torch.randn(5, 4, 9, 9), _flat_channels(1)),
        (lambda: nn.Conv1d(4, 16, 5, bias=False), 0, lambda: torch.randn(5, 4, 12), _flat_channels(1)),
        (
            lambda: nn.ConvTranspose2d(8, 6, 3, stride=2, bias=False),
            1,
            lambda: torch.randn(5, 8, 5, 5),
            _flat_channels(1),
        ),
        (lambda: nn.Linear(32, 16, bias=False), 0, lambda: torch.randn(5, 32), _flat_channels(1)),
        # a table's rows are its channels: each id's vector
        (lambda: nn.Embedding(40, 8), 0, lambda: torch.arange(40).reshape(5, 8), lambda out: out.reshape(-1, 8)),
        # (read through the alias torch captures before the rows' renormalization)
        (
            lambda: nn.Embedding(40, 8, max_norm=1.0),
            0,
            lambda: torch.arange(40).reshape(5, 8),
            lambda out: out.reshape(-1, 8),
        ),
    ],
    ids=["conv2d", "conv1d", "conv_transpose2d", "linear", "embedding", "embedding_max_norm"],
)
def test_int8_scales_are_per_output_channel(
    make: Callable[[], nn.Module],
    weight_axis: int,
    example: Callable[[], torch.Tensor],
    channels: Callable[[np.ndarray], np.ndarray],
    tmp_path: Path,
) -> None:
    """Output channels whose weights differ 1,000-fold in size each keep int8's precision: one scale for
    all of them would leave the smallest a few steps of the largest's."""
    torch.manual_seed(0)
    layer = make().eval()
    with torch.no_grad():
        shape = [1] * layer.weight.ndim
        shape[weight_axis] = -1
        layer.weight.mul_(torch.logspace(0, -3, layer.weight.shape[weight_axis]).reshape(shape))
        x = example()
        reference = channels(layer(x).numpy())
    mle.export_pytorch_model(layer, tmp_path / "q.mle", example_inputs=x[:1], quantize="int8")
    ours = channels(mle.load_model(tmp_path / "q.mle").predict(x.numpy()))
    error = np.abs(ours - reference).max(axis=1) / np.abs(reference).max(axis=1)
    assert error.max() <= 2e-2, f"relative error per output channel: {np.round(error, 4)}"


def test_an_unknown_quantization_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quantize must be one of"):
        mle.export_pytorch_model(MLP().eval(), tmp_path / "m.mle", input_shape=(1, 20), quantize="int4")


def _captured(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """The model captured by torch.export itself, as a user would (its internals warn of their own API)."""
    import warnings

    from torch.export import Dim, export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return export(model, (example,), dynamic_shapes=({0: Dim("batch")},) if dynamic_batch else None)


def test_a_saved_pt2_program_exports_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    torch.manual_seed(0)
    model = _randomize_statistics(ResNet()).eval()
    program = _captured(model, torch.randn(2, 3, 16, 16))
    torch.export.save(program, tmp_path / "m.pt2")
    mle_cli = Path(sys.executable).parent / "mle-export"
    out = subprocess.run([str(mle_cli), "m.pt2", "m.mle"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "wrote m.mle" in out.stdout and "only files you trust" in out.stderr
    runtime = mle.load_model(tmp_path / "m.mle")
    for n in (1, 7):
        x = torch.randn(n, 3, 16, 16)
        with torch.no_grad():
            want = model(x).numpy()
        got = runtime.predict(x.numpy())
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-5 * float(np.abs(want).max())


def test_an_exported_program_needs_a_dynamic_batch_and_a_matching_shape(tmp_path: Path) -> None:
    fixed = _captured(MLP().eval(), torch.randn(4, 20), dynamic_batch=False)
    with pytest.raises(UnsupportedModelError, match="fixed batch size of 4"):
        mle.export_model(fixed, tmp_path / "m.mle")
    dynamic = _captured(MLP().eval(), torch.randn(4, 20))
    with pytest.raises(ValueError, match=r"input_shape \(1, 21\) disagrees"):
        mle.export_model(dynamic, tmp_path / "m.mle", input_shape=(1, 21))
    assert not (tmp_path / "m.mle").exists()
    mle.export_model(dynamic, tmp_path / "m.mle")
    x = torch.randn(9, 20)
    with torch.no_grad():
        want = dynamic.module()(x).numpy()
    np.testing.assert_allclose(mle.load_model(tmp_path / "m.mle").predict(x.numpy()), want, rtol=1e-5, atol=1e-6)


class Mixed(nn.Module):
    """Three inputs of three dtypes: token ids, a bool mask over them, and float features."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.fc = nn.Linear(8 + 5, 3)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        kept = keep.unsqueeze(-1)
        pooled = (self.embedding(ids) * kept).sum(1) / kept.sum(1).clamp(min=1)
        return self.fc(torch.cat([pooled, features], 1))


def _mixed_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(n)
    ids = torch.randint(0, 30, (n, 6), generator=generator)
    return ids, torch.rand(n, 6, generator=generator) < 0.7, torch.randn(n, 5, generator=generator)


def test_a_module_of_several_inputs_keeps_their_order_names_and_dtypes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Mixed().eval()
    result = mle.export_pytorch_model(model, tmp_path / "m.mle", example_inputs=_mixed_inputs(1))
    assert result["success"]
    runtime = mle.load_model(tmp_path / "m.mle")
    assert [i["name"] for i in runtime.get_model_info()["inputs"]] == ["ids", "keep", "features"]
    for n in BATCHES:
        inputs = _mixed_inputs(n)
        with torch.no_grad():
            want = model(*inputs).numpy()
        (got,) = runtime.run([t.numpy() for t in inputs])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.value, self.gate = nn.Linear(4, 2), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.value(x) * torch.sigmoid(self.gate(y))


def test_float_inputs_need_only_their_shapes(tmp_path: Path) -> None:
    model = Gated().eval()
    mle.export_model(model, tmp_path / "m.mle", input_shape=[(1, 4), (1, 3)])
    x, y = torch.randn(7, 4), torch.randn(7, 3)
    with torch.no_grad():
        want = model(x, y).numpy()
    (got,) = mle.load_model(tmp_path / "m.mle").run([x.numpy(), y.numpy()])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one such shape per input"):
        mle.export_model(model, tmp_path / "bad.mle", input_shape=[(1, 4), 3])
    with pytest.raises(UnsupportedModelError, match="pass example_inputs="):
        mle.export_model(Mixed().eval(), tmp_path / "bad.mle", input_shape=[(1, 6), (1, 6), (1, 5)])
    assert not (tmp_path / "bad.mle").exists()


class Separate(nn.Module):
    """Two outputs, each of its own input: their batch sizes may differ."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 2), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first(x), self.second(y)


def test_a_captured_program_of_several_inputs_exports(tmp_path: Path) -> None:
    import warnings

    from torch.export import Dim, export

    torch.manual_seed(0)
    model = Mixed().eval()
    examples = _mixed_inputs(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        batch = Dim("batch")
        program = export(model, examples, dynamic_shapes=({0: batch}, {0: batch}, {0: batch}))
        apart = export(
            Separate().eval(), (torch.randn(2, 4), torch.randn(3, 3)), dynamic_shapes=({0: Dim("a")}, {0: Dim("b")})
        )
    with pytest.raises(ValueError, match="disagrees with the exported program's inputs"):
        mle.export_model(program, tmp_path / "m.mle", input_shape=[(1, 6), (1, 6), (1, 4)])
    mle.export_model(program, tmp_path / "m.mle", input_shape=[(1, 6), (1, 6), (1, 5)])
    inputs = _mixed_inputs(9)
    with torch.no_grad():
        want = model(*inputs).numpy()
    (got,) = mle.load_model(tmp_path / "m.mle").run([t.numpy() for t in inputs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    with pytest.raises(UnsupportedModelError, match="one for every input"):
        mle.export_model(apart, tmp_path / "apart.mle")


class Holding(nn.Module):
    """A module holding a lambda: pickle cannot write it, the exporter can."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.activation = lambda x: torch.cumsum(x, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.fc(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_module_computes_in_float32(dtype: torch.dtype, tmp_path: Path) -> None:
    """Its weights widened exactly: the answers are the float32 forward's, within half precision's rounding
    of the module's own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 3)).to(dtype).eval()
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 8))
    x = torch.randn(7, 8).to(dtype)
    got = mle.load_model(tmp_path / "m.mle").predict(x.float().numpy())
    with torch.no_grad():
        widened, own = model.float()(x.float()).numpy(), model.to(dtype)(x).float().numpy()
    np.testing.assert_allclose(got, widened, rtol=1e-5, atol=1e-6)
    assert float(np.abs(got - own).max()) <= 2e-2 * float(np.abs(own).max())


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.fc(x)
        return y, y, x


def test_a_tensor_returned_twice_and_an_input_returned(tmp_path: Path) -> None:
    model = Twice().eval()
    mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 3))
    x = torch.randn(4, 3)
    with torch.no_grad():
        want = model(x)
    for got, theirs in zip(mle.load_model(tmp_path / "m.mle").run([x.numpy()]), want, strict=True):
        np.testing.assert_allclose(got, theirs.numpy(), rtol=1e-6, atol=1e-7)


def test_a_module_pickle_cannot_write_exports_without_a_joblib_size(tmp_path: Path) -> None:
    model = Holding().eval()
    result = mle.export_model(model, tmp_path / "m.mle", input_shape=(1, 3))
    assert result["success"] and result["joblib_size_bytes"] is None and result["compression_ratio"] is None
    x = torch.randn(4, 3)
    with torch.no_grad():
        np.testing.assert_allclose(mle.load_model(tmp_path / "m.mle").predict(x.numpy()), model(x).numpy(), atol=1e-6)
