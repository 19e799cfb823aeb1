"""The IR: named inputs and outputs, and nodes ``{op, version, inputs, outputs, attrs}`` in topological
order over named tensors. The JSON form in the manifest is the serialized graph."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from mle_runtime.errors import FormatError

MAX_NODES = 100_000


@dataclass(frozen=True)
class ValueInfo:
    """A graph input: its name, element kind and shape (``None`` for the batch dimension)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        # Defaults (no attrs, version 1) are left out to keep small models' files small.
        d: dict[str, Any] = {"op": self.op, "inputs": list(self.inputs), "outputs": list(self.outputs)}
        if self.attrs:
            d["attrs"] = self.attrs
        if self.version != 1:
            d["version"] = self.version
        return d


@dataclass(frozen=True)
class Graph:
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [i.to_json() for i in self.inputs],
            "outputs": list(self.outputs),
            "nodes": [n.to_json() for n in self.nodes],
        }

    def param_names(self, tensor_names: set[str]) -> list[str]:
        """The tensors the nodes read, in first-use order."""
        seen: dict[str, None] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name in tensor_names:
                    seen.setdefault(name)
        return list(seen)

    @classmethod
    def from_json(cls, d: dict[str, Any], tensor_names: set[str]) -> Graph:
        """Parse and check the graph: every name defined once, before use, and outputs defined."""
        try:
            inputs = tuple(
                ValueInfo(str(i["name"]), tuple(i["shape"]), str(i.get("dtype", "float"))) for i in d["inputs"]
            )
            raw_nodes = d["nodes"]
            if not isinstance(raw_nodes, list) or len(raw_nodes) > MAX_NODES:
                raise FormatError(f"graph: nodes must be a list of at most {MAX_NODES}")
            nodes = tuple(
                Node(
                    str(n["op"]),
                    tuple(map(str, n["inputs"])),
                    tuple(map(str, n["outputs"])),
                    dict(n.get("attrs", {})),
                    int(n.get("version", 1)),
                )
                for n in raw_nodes
            )
            outputs = tuple(map(str, d["outputs"]))
        except FormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FormatError(f"graph: malformed ({type(e).__name__}: {e})") from e
        for vi, raw in zip(inputs, d["inputs"], strict=True):
            if not isinstance(raw["shape"], list) or not raw["shape"]:  # (every input has a row axis)
                raise FormatError(
                    f"graph: input {vi.name!r} has a bad shape {raw['shape']!r:.80}; expected a list, rows first"
                )
            if not all(s is None or (type(s) is int and s >= 0) for s in vi.shape):
                raise FormatError(f"graph: input {vi.name!r} has a bad shape {list(vi.shape)}")
        defined = set(tensor_names)
        for vi in inputs:
            if vi.name in defined:
                raise FormatError(f"graph: input {vi.name!r} is defined twice")
            defined.add(vi.name)
        for i, node in enumerate(nodes):
            missing = [n for n in node.inputs if n not in defined]
            if missing:
                raise FormatError(f"graph: node #{i} ({node.op}) reads undefined tensors {missing}")
            for out in node.outputs:
                if out in defined:
                    raise FormatError(f"graph: node #{i} ({node.op}) redefines {out!r}")
                defined.add(out)
        undefined = [o for o in outputs if o not in defined]
        if undefined or not outputs:
            raise FormatError(f"graph: outputs {undefined or '[]'} are not produced by any node")
        return cls(inputs, outputs, nodes)


def structure_hash(graph_json: bytes, tensor_specs: list[tuple[str, str, tuple[int, ...]]]) -> str:
    """SHA-256 of what a compiled executable depends on: the graph and the tensors' names, dtypes and
    shapes, but not their values (parameters are jit arguments)."""
    h = hashlib.sha256(graph_json)
    for name, dtype, shape in tensor_specs:
        h.update(f"\0{name}:{dtype}:{','.join(map(str, shape))}".encode())
    return h.hexdigest()
