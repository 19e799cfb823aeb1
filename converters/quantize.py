"""Opt-in weight quantization at export (networks): ``quantize="fp16"`` stores weight tensors as
float16 (the runtime widens them to its precision at load), ``quantize="int8"`` as int8 with one scale
and zero point per output channel, widened by a DequantizeInt8 node at the start of the graph.

A tensor's output channels are found from the op that reads it (``channel_axes``): a kernel stored
spatial axes first has them last, a depthwise kernel on its last two axes together, an embedding table
one per row. (Earlier exports scaled a kernel along its first spatial axis: one scale shared by output
channels of very different sizes, the smaller ones 100% off; such files still load and run as written.)"""

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
# Ops that give their input as it is: a weight's channels are found past them.
_SAME_VALUES = {"aten.alias", "aten.clone", "aten.detach", "aten.lift_fresh_copy"}
# (op, input) of an embedding table, quantized one scale per row (an id's vector)
_TABLES = {("aten.embedding", 0), ("aten.embedding_renorm", 0), ("aten._embedding_bag", 0), ("keras.Embedding", 1)}


def quantize(ir: ModelIR, mode: str) -> tuple[ModelIR, dict[str, Any]]:
    """The model with its weight matrices and kernels (float, 2-D or more, >= MIN_VALUES values)
    quantized, and a report of the bytes before and after."""
    if mode not in MODES:
        raise ValueError(f"quantize must be one of {MODES} or None, got {mode!r}")
    tensors = dict(ir.tensors)
    before = sum(t.nbytes for t in tensors.values())
    nodes: list[Node] = []
    count = 0
    readers: dict[str, list[tuple[Node, int]]] = {}
    for node in ir.graph.nodes:
        for position, given in enumerate(node.inputs):
            readers.setdefault(given, []).append((node, position))
    for name, t in ir.tensors.items():
        if t.dtype.kind != "f" or t.ndim < 2 or t.size < MIN_VALUES:
            continue
        count += 1
        if mode == "fp16":
            tensors[name] = CompressionUtils.quantize_weights_fp16(t)
            continue
        axes = channel_axes(t.ndim, _first_reader(name, readers))
        q, scales, zero_points = CompressionUtils.quantize_weights_int8_per_channel(t, axis=axes)
        del tensors[name]
        tensors[f"{name}.q"] = q
        tensors[f"{name}.scale"] = scales.astype(np.float32)
        tensors[f"{name}.zero_point"] = zero_points.astype(np.float32)
        nodes.append(Node("DequantizeInt8", (f"{name}.q", f"{name}.scale", f"{name}.zero_point"), (name,)))
    after = sum(t.nbytes for t in tensors.values())
    graph = Graph(ir.graph.inputs, ir.graph.outputs, tuple(nodes) + ir.graph.nodes)
    metadata = {**ir.metadata, "quantization": mode}
    report = {"mode": mode, "tensors": count, "bytes_before": before, "bytes_after": after}
    report["size_reduction"] = before / after if after else 1.0
    return ModelIR(graph, tensors, metadata), report


def _first_reader(name: str, readers: dict[str, list[tuple[Node, int]]]) -> tuple[Node, int] | None:
    """The first op that reads the tensor (and which of its inputs it is), past ops that give it as it is
    (the alias PyTorch captures before an embedding's renormalization)."""
    seen = readers.get(name)
    while seen and seen[0][0].op in _SAME_VALUES:
        seen = readers.get(seen[0][0].outputs[0])
    return seen[0] if seen else None


def channel_axes(ndim: int, reader: tuple[Node, int] | None) -> tuple[int, ...]:
    """The axes of a weight tensor's output channels, from the op that reads it (and which of its inputs
    it is); the last axis where no rule names the op (x @ W's columns, channels-last kernels)."""
    if reader is None:
        return (ndim - 1,)
    node, position = reader
    op, attrs = node.op, node.attrs
    if op == "aten.convolution":  # (out, in / groups, k...), or stored (k..., in / groups, out)
        if attrs.get("transposed"):  # (in, out / groups, k...)
            return (1,)
        return (ndim - 1,) if attrs.get("kernel_spatial_first") else (0,)
    if op == "keras.ConvTranspose":  # (k..., out, in)
        return (ndim - 2,)
    if op == "keras.DepthwiseConv":  # (k..., in, multiplier): output channel in * multiplier + j
        return (ndim - 2, ndim - 1)
    if op == "keras.EinsumDense" and position == 1:  # the kernel's letters the output keeps
        given, output = attrs["equation"].split("->")
        kernel = given.split(",")[1]
        kept = tuple(i for i, letter in enumerate(kernel) if letter in output)
        return kept or (ndim - 1,)
    if op == "keras.MultiHeadAttention" and position in (3, 5, 7):  # (dim, heads, size)
        return (ndim - 2, ndim - 1)
    if (op, position) in _TABLES:
        return (0,)  # a row per id
    return (ndim - 1,)
