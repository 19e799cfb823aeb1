"""CompressionUtils and SecurityUtils."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mle_runtime import CompressionUtils, FormatError, MLEFormat, SecurityUtils


def test_int8_quantization_round_trip(rng) -> None:
    w = rng.normal(size=(64, 32)).astype(np.float32)
    q, scale, zero_point = CompressionUtils.quantize_weights_int8(w)
    assert q.dtype == np.int8 and q.shape == w.shape and -128 <= zero_point <= 127
    back = CompressionUtils.dequantize_weights_int8(q, scale, zero_point)
    assert np.max(np.abs(back - w)) <= scale / 2 + 1e-6
    q, scale, zp = CompressionUtils.quantize_weights_int8(np.full(5, 3.0))
    np.testing.assert_allclose(CompressionUtils.dequantize_weights_int8(q, scale, zp), 3.0, rtol=1e-2)
    with pytest.raises(ValueError, match="NaN"):
        CompressionUtils.quantize_weights_int8(np.array([1.0, np.nan]))


@pytest.mark.parametrize(("axis", "scales_shape"), [(0, (3, 1, 1, 1)), (-1, (1, 1, 1, 2)), ((1, 3), (1, 4, 1, 2))])
def test_int8_quantization_per_channel(axis, scales_shape, rng) -> None:
    """Each channel (an index along the axis, or along each of the axes) its own scale: channels of sizes
    1 to 1e-3 each come back within half their own step."""
    w = rng.normal(size=(3, 4, 5, 2))
    w *= np.logspace(0, -3, int(np.prod(scales_shape))).reshape(scales_shape)
    q, scale, zero_point = CompressionUtils.quantize_weights_int8_per_channel(w, axis=axis)
    assert q.dtype == np.int8 and q.shape == w.shape
    assert scale.shape == zero_point.shape == scales_shape
    assert np.all(np.abs((q - zero_point) * scale - w) <= scale / 2 + 1e-12)
    if axis == 0:  # each channel as quantize_weights_int8 quantizes it alone
        for c in range(w.shape[0]):
            q_c, scale_c, zero_c = CompressionUtils.quantize_weights_int8(w[c])
            assert np.array_equal(q_c, q[c]) and scale_c == scale[c, 0, 0, 0] and zero_c == zero_point[c, 0, 0, 0]


def test_fp16_quantization(rng) -> None:
    w = rng.normal(size=100)
    h = CompressionUtils.quantize_weights_fp16(w)
    assert h.dtype == np.float16
    np.testing.assert_allclose(h, w, rtol=1e-3)
    with pytest.raises(ValueError, match="beyond float16"):
        CompressionUtils.quantize_weights_fp16(np.array([1e6]))


@pytest.mark.parametrize("code", [MLEFormat.COMPRESSION_NONE, MLEFormat.COMPRESSION_LZ4, MLEFormat.COMPRESSION_ZSTD])
def test_compress_round_trip(code: int) -> None:
    data = bytes(range(256)) * 100
    packed = CompressionUtils.compress_data(data, code)
    if code:
        assert len(packed) < len(data)
    assert CompressionUtils.decompress_data(packed, code, len(data)) == data
    if code:
        with pytest.raises(FormatError):
            CompressionUtils.decompress_data(packed[: len(packed) // 2] + b"garbage", code, len(data))
        with pytest.raises(FormatError, match="expected 10|exceeds"):
            CompressionUtils.decompress_data(packed, code, 10)
    with pytest.raises(ValueError, match="unknown compression type"):
        CompressionUtils.compress_data(data, 7)


def test_checksum_hash_and_keys() -> None:
    assert SecurityUtils.compute_checksum(b"mle") == zlib.crc32(b"mle")
    assert SecurityUtils.compute_hash(b"mle") == hashlib.sha256(b"mle").hexdigest()
    public, private = SecurityUtils.generate_keypair()
    assert len(public) == 32 and len(private) == 32
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(b"model")
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"model")
    assert SecurityUtils.generate_keypair() != (public, private)
