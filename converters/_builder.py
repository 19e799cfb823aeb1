"""GraphBuilder: what converters use to emit nodes and tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mle_runtime.graph import Graph, Node, ValueInfo
from mle_runtime.metadata import encode_classes


@dataclass
class Converted:
    """What a converter produced: tensor names by output role, and what the runtime needs to decode them."""

    task: str  # "classifier", "regressor", "clusterer" or "transformer"
    outputs: dict[str, str]  # role ("label", "probabilities", "decision", "predictions", "transformed") -> tensor
    run_outputs: list[str]
    classes: np.ndarray | list[np.ndarray] | None = None  # a list: one array per output
    n_outputs: int | None = None  # width of "transformed", for the next step of a pipeline
    # Where scikit-learn raises for some inputs (a compiled graph cannot): the message, and an "invalid"
    # output (rows,) that is non-zero on the rows it would raise for; the runtime raises ValueError then.
    invalid_message: str | None = None


class ModelIR(NamedTuple):
    """A converted model, ready to write: the graph, its tensors and the model's metadata."""

    graph: Graph
    tensors: dict[str, np.ndarray]
    metadata: dict[str, Any]


@dataclass
class GraphBuilder:
    inputs: list[ValueInfo] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    _count: int = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, name: str, shape: tuple[int | None, ...]) -> str:
        self.inputs.append(ValueInfo(name, shape))
        return name

    def const(self, hint: str, value: Any) -> str:
        """Add a parameter tensor (stored in the file, passed to the jitted function as an argument)."""
        name = self._fresh(hint)
        array = np.asarray(value)  # not ascontiguousarray: it turns a 0-d scalar into shape (1,)
        self.tensors[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return name

    def op(self, op: str, *inputs: str, n_out: int = 1, version: int = 1, **attrs: Any) -> Any:
        """Append a node; returns its output name (or a tuple of names when n_out > 1)."""
        outputs = tuple(self._fresh(op.lower()) for _ in range(n_out))
        self.nodes.append(Node(op, tuple(inputs), outputs, attrs, version))
        return outputs[0] if n_out == 1 else outputs

    def finish(self, named: dict[str, str]) -> Graph:
        """The graph whose outputs are ``named`` (final name -> tensor), renamed in place."""
        rename = {tensor: final for final, tensor in named.items()}
        if len(rename) != len(named):
            raise ValueError(f"one tensor cannot be two outputs: {named}")
        for tensor in list(rename):
            if tensor in self.tensors or tensor in {i.name for i in self.inputs}:
                # An output that is an input or parameter gets its own node, so that it can be renamed.
                rename[self.op("Identity", tensor)] = rename.pop(tensor)
        nodes = tuple(
            Node(
                n.op,
                tuple(rename.get(i, i) for i in n.inputs),
                tuple(rename.get(o, o) for o in n.outputs),
                n.attrs,
                n.version,
            )
            for n in self.nodes
        )
        return Graph(tuple(self.inputs), tuple(named), nodes)


def model_ir(b: GraphBuilder, converted: Converted, metadata: dict[str, Any]) -> ModelIR:
    """The finished model: run outputs first (in order), then the others by name; the task, the run
    outputs and the classes added to ``metadata``."""
    order = converted.run_outputs + sorted(set(converted.outputs) - set(converted.run_outputs))
    graph = b.finish({name: converted.outputs[name] for name in order})
    metadata = {**metadata, "task": converted.task, "run_outputs": converted.run_outputs}
    if converted.invalid_message is not None:
        metadata["invalid_message"] = converted.invalid_message
    if isinstance(converted.classes, list):
        metadata["output_classes"] = [encode_classes(c) for c in converted.classes]
    elif converted.classes is not None:
        metadata.update(encode_classes(converted.classes))
    return ModelIR(graph, b.tensors, metadata)


def booster_metadata(
    framework: str, version: str, model: Any, n_features: int, objective: str, feature_names: Any = None
) -> dict[str, Any]:
    """The metadata of a gradient-boosting library's model (they all take NaN as a missing value)."""
    metadata: dict[str, Any] = {
        "framework": framework,
        "framework_version": version,
        "estimator": f"{framework}.{type(model).__name__}",
        "n_features": n_features,
        "allow_nan": True,
        "objective": objective,
    }
    if feature_names is not None and len(feature_names):
        metadata["feature_names"] = [str(c) for c in feature_names]
    return metadata
