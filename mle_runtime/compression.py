"""Per-tensor compression (LZ4, ZSTD) and weight quantization (int8, fp16)."""

from __future__ import annotations

from collections.abc import Sequence

import lz4.frame
import numpy as np
import zstandard

from mle_runtime.errors import FormatError
from mle_runtime.format import COMPRESSIONS, MLEFormat

ZSTD_LEVEL = 9


def compression_code(compression: bool | str | int | None) -> int:
    """Map the user's ``compression=`` argument to a container code."""
    if compression is None or compression is False:
        return MLEFormat.COMPRESSION_NONE
    if compression is True:
        return MLEFormat.COMPRESSION_ZSTD
    if isinstance(compression, str):
        names = {v: k for k, v in COMPRESSIONS.items()}
        if compression.lower() not in names:
            raise ValueError(f"compression must be one of {sorted(names)} or True/False, got {compression!r}")
        return names[compression.lower()]
    if compression in COMPRESSIONS:
        return int(compression)
    raise ValueError(f"unknown compression {compression!r}")


class CompressionUtils:
    """Utilities for model compression and quantization."""

    @staticmethod
    def quantize_weights_int8(weights: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Affine int8 quantization: ``weights ~= (q - zero_point) * scale``."""
        w = np.asarray(weights, dtype=np.float64)
        if w.size == 0:
            return np.zeros(w.shape, np.int8), 1.0, 0
        q, scale, zero_point = CompressionUtils.quantize_weights_int8_per_channel(w, axis=())  # (one channel)
        return q, float(scale.item()), int(zero_point.item())

    @staticmethod
    def quantize_weights_int8_per_channel(
        weights: np.ndarray, axis: int | Sequence[int] = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``quantize_weights_int8`` for each channel, a channel being one index along ``axis`` (or one
        index along each of several axes: a depthwise kernel's (input, multiplier) pairs; none: the whole
        tensor): q, and the scales and zero points shaped as the weights with 1 on every other axis, so
        that ``weights ~= (q - zero_point) * scale`` broadcasts."""
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(w)):
            raise ValueError("cannot quantize weights containing NaN or inf")
        channel = {a % w.ndim for a in ((axis,) if isinstance(axis, int) else axis)}
        others = tuple(a for a in range(w.ndim) if a not in channel)
        # (each channel's range holds 0, so that 0 is exact)
        lo = np.min(w, axis=others, keepdims=True, initial=0.0)
        hi = np.max(w, axis=others, keepdims=True, initial=0.0)
        spread = (hi - lo) / 255.0
        scale = np.where(spread == 0, 1.0, spread)
        zero_point = np.clip(np.rint(-128 - lo / scale), -128, 127)
        q = np.clip(np.rint(w / scale) + zero_point, -128, 127).astype(np.int8)
        return q, scale, zero_point.astype(np.int32)

    @staticmethod
    def dequantize_weights_int8(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
        return ((np.asarray(q, np.int32) - zero_point) * scale).astype(np.float32)

    @staticmethod
    def quantize_weights_fp16(weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights)
        finite = w[np.isfinite(w)]
        limit = float(np.finfo(np.float16).max)
        if finite.size and float(np.abs(finite).max()) > limit:
            raise ValueError(f"weights reach {float(np.abs(finite).max()):.3g}, beyond float16's {limit:.0f}")
        return w.astype(np.float16)

    @staticmethod
    def compress_data(
        data: bytes | bytearray | memoryview, compression_type: int = MLEFormat.COMPRESSION_NONE
    ) -> bytes:
        if compression_type == MLEFormat.COMPRESSION_NONE:
            return bytes(data)
        if compression_type == MLEFormat.COMPRESSION_LZ4:
            return bytes(lz4.frame.compress(data, store_size=True))
        if compression_type == MLEFormat.COMPRESSION_ZSTD:
            return bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data))
        raise ValueError(f"unknown compression type {compression_type!r}; expected 0, 1 or 2")

    @staticmethod
    def decompress_data(
        data: bytes | bytearray | memoryview,
        compression_type: int = MLEFormat.COMPRESSION_NONE,
        expected_size: int | None = None,
    ) -> bytes:
        """Inverse of ``compress_data``; with ``expected_size`` the output is capped and checked."""
        try:
            if compression_type == MLEFormat.COMPRESSION_NONE:
                out = bytes(data)
            elif compression_type == MLEFormat.COMPRESSION_LZ4:
                limit = -1 if expected_size is None else expected_size
                decompressor = lz4.frame.LZ4FrameDecompressor()
                out = decompressor.decompress(data, max_length=limit)
                if not decompressor.eof or decompressor.unused_data:
                    raise FormatError(f"lz4 frame holds more than expected {len(out)} bytes, or trailing data")
            elif compression_type == MLEFormat.COMPRESSION_ZSTD:
                limit = 0 if expected_size is None else expected_size
                out = zstandard.ZstdDecompressor().decompress(data, max_output_size=limit)
            else:
                raise ValueError(f"unknown compression type {compression_type!r}; expected 0, 1 or 2")
        except (RuntimeError, zstandard.ZstdError) as e:
            raise FormatError(f"corrupt {COMPRESSIONS.get(compression_type)} data: {e}") from e
        if expected_size is not None and len(out) != expected_size:
            raise FormatError(f"decompressed to {len(out)} bytes, expected {expected_size}")
        return out
