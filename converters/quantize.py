"""Opt-in weight quantization at export (networks): ``quantize="fp16"`` stores weight tensors as
float16 (the runtime widens them to its precision at load), ``quantize="int8"`` as int8 with one scale
and zero point per output channel, widened by a DequantizeInt8 node at the start of the graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from mle_runtime.compression import CompressionUtils
from mle_runtime.converters._builder import ModelIR
from mle_runtime.graph import Graph, Node

MODES = ("fp16", "int8")
# Tensors of fewer values (biases, normalization statistics, small heads) stay as they are: they are
# most of the accuracy and little of the size.
MIN_VALUES = 256


def quantize(ir: ModelIR, mode: str) -> tuple[ModelIR, dict[str, Any]]:
    """The model with its weight matrices and kernels (float, 2-D or more, >= MIN_VALUES values)
    quantized, and a report of the bytes before and after."""
    if mode not in MODES:
        raise ValueError(f"quantize must be one of {MODES} or None, got {mode!r}")
    tensors = dict(ir.tensors)
    before = sum(t.nbytes for t in tensors.values())
    nodes: list[Node] = []
    count = 0
    for name, t in ir.tensors.items():
        if t.dtype.kind != "f" or t.ndim < 2 or t.size < MIN_VALUES:
            continue
        count += 1
        if mode == "fp16":
            tensors[name] = CompressionUtils.quantize_weights_fp16(t)
            continue
        # the output channel: a kernel's first axis; a matrix's last, as the graph multiplies x @ W
        axis = t.ndim - 1 if t.ndim == 2 else 0
        q, scales, zero_points = CompressionUtils.quantize_weights_int8_per_channel(t, axis=axis)
        del tensors[name]
        tensors[f"{name}.q"] = q
        tensors[f"{name}.scale"] = scales.astype(np.float32)
        tensors[f"{name}.zero_point"] = zero_points.astype(np.float32)
        inputs = (f"{name}.q", f"{name}.scale", f"{name}.zero_point")
        nodes.append(Node("DequantizeInt8", inputs, (name,), {"axis": axis} if axis else {}))
    after = sum(t.nbytes for t in tensors.values())
    graph = Graph(ir.graph.inputs, ir.graph.outputs, tuple(nodes) + ir.graph.nodes)
    metadata = {**ir.metadata, "quantization": mode}
    report = {"mode": mode, "tensors": count, "bytes_before": before, "bytes_after": after}
    report["size_reduction"] = before / after if after else 1.0
    return ModelIR(graph, tensors, metadata), report
