"""GraphBuilder: what converters use to emit nodes and tensors."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mle_runtime.errors import UnsupportedModelError
from mle_runtime.graph import Graph, Node, ValueInfo
from mle_runtime.inputs import NONE_CODE, is_missing_category, is_missing_value
from mle_runtime.metadata import encode_classes


@dataclass
class Converted:
    """What a converter produced: tensor names by output role, and what the runtime needs to decode them."""

    # "classifier", "regressor", "clusterer", "transformer", "density" (score_samples only), "covariance"
    # (mahalanobis only) or "neighbors" (kneighbors only)
    task: str
    outputs: dict[str, str]  # role ("label", "probabilities", "decision", "predictions", "transformed") -> tensor
    run_outputs: list[str]
    classes: np.ndarray | list[np.ndarray] | None = None  # a list: one array per output
    n_outputs: int | None = None  # width of "transformed", for the next step of a pipeline
    # Multilabel (ClassifierChain, multilabel one-vs-rest): "probabilities" holds each output's positive
    # class probability, (rows, outputs), not each output's classes side by side.
    multilabel: bool = False
    # KNeighborsTransformer: transform gives the neighbour graph, a sparse (rows, training rows) matrix built
    # from the kneighbors outputs: {"mode": "distance" or "connectivity", "n_samples_fit": training rows,
    # "n_neighbors": what its kneighbors gives, one fewer than its graph's in distance mode}.
    neighbors_graph: dict[str, Any] | None = None


def transformed(y: str, width: int) -> Converted:
    """A transformer's result: tensor ``y`` of ``width`` columns, for the next step of a pipeline."""
    return Converted("transformer", {"transformed": y}, ["transformed"], n_outputs=width)


def as_built_labels(classes: np.ndarray) -> np.ndarray:
    """Object labels in the dtype numpy gives their values (strings: one "<U" as wide as the widest; Python
    ints: int64): the labels that scikit-learn's predict builds by numpy means instead of indexing
    classes_ (DummyClassifier, GaussianProcessClassifier); classes of any other kind as they are."""
    if classes.dtype != object:
        return classes
    built = np.asarray(classes.tolist())
    return built if built.ndim == 1 and built.dtype.kind in "biufU" else classes


class ModelIR(NamedTuple):
    """A converted model, ready to write: the graph, its tensors and the model's metadata."""

    graph: Graph
    tensors: dict[str, np.ndarray]
    metadata: dict[str, Any]


@dataclass
class GraphBuilder:
    """Nodes and tensors of the graph being built. String columns never enter the graph: the runtime maps
    each one's values to their index in the column's vocabulary (stored in the metadata) before the call,
    so converters that meet strings register them here (``string_codes``), on the input columns a tensor
    is known to carry (``columns_of``: the input itself, column selections, imputations, and the parts
    of a concatenation that are any of these; None for a computed column)."""

    inputs: list[ValueInfo] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    columns_of: dict[str, list[int | None]] = field(default_factory=dict)
    vocabularies: dict[int, set[str]] = field(default_factory=dict)
    # Where the source model raises for some inputs (a compiled graph cannot): a (rows,) tensor non-zero
    # on the rows it would raise for, and its message. Kept here, not on a converter's result, so that
    # a check deep inside a pipeline or an ensemble reaches the model's "invalid" output.
    refusals: list[tuple[str, str]] = field(default_factory=list)
    # The text features (mle_runtime/text.py): each vectorizer's analyser settings, input column and
    # vocabulary; their terms and counts reach the graph sparse, in columns after the input's own.
    texts: list[dict[str, Any]] = field(default_factory=list)
    # Tensors of the runtime's host-side steps (CatBoost's counter tables), which no node reads: kept in
    # the file, never passed to the jitted function.
    host_tensors: set[str] = field(default_factory=set)
    # Sparse tensors: placeholder -> (terms, values, width), and concatenations holding one -> their
    # parts and widths. No node reads a placeholder: ``op`` emits the sparse form of an op that has one
    # (a product with weights, a per-term scale, a norm, ...) and gives any other the dense columns.
    sparse: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    composites: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    _densified: dict[str, str] = field(default_factory=dict)
    _deferred: dict[str, tuple[int, list[Any]]] = field(default_factory=dict)
    _shared: dict[Hashable, str] = field(default_factory=dict)
    _count: int = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, name: str, shape: tuple[int | None, ...]) -> str:
        self.inputs.append(ValueInfo(name, shape))
        if len(shape) == 2 and shape[1] is not None:
            self.columns_of[name] = list(range(shape[1]))
        return name

    def string_codes(self, hint: str, x: str, feature: int, values: Sequence[Any], owner: str) -> str:
        """A float tensor holding, for each of ``values`` (strings, None, or NaN for a missing value), its
        code in the vocabulary of the input column feature ``feature`` of ``x`` reads (None: NONE_CODE,
        a category of its own as in scikit-learn's encoders; NaN for a missing value). The codes are
        fixed once every converter has registered its strings."""
        columns = self.columns_of.get(x)
        if columns is None or columns[feature] is None:
            raise UnsupportedModelError(
                f"{owner}: string categories are supported on input columns (directly, through a "
                "ColumnTransformer or after an imputer), not on computed features"
            )
        column = int(columns[feature])  # type: ignore[arg-type]
        strings = [v for v in values if not is_missing_value(v)]
        if not all(isinstance(v, str) for v in strings):
            raise UnsupportedModelError(
                f"{owner}: categories mix strings with {sorted({type(v).__name__ for v in strings})}"
            )
        if any(t["column"] == column for t in self.texts):
            raise UnsupportedModelError(f"{owner}: input column {column} is read both as categories and as text")
        self.vocabularies.setdefault(column, set()).update(strings)
        name = self._fresh(hint)
        self._deferred[name] = (column, list(values))
        return name

    def text_counts(
        self, x: str, settings: dict[str, Any], vocabulary: list[str], owner: str, hashing: dict[str, Any] | None = None
    ) -> str:
        """(rows, len(vocabulary)) counts of the vocabulary's terms in the documents of the one input
        column ``x`` holds, analysed as ``settings`` say (a sparse tensor: the runtime's text step hands
        the graph each document's terms and counts); with ``hashing`` (mle_runtime.text.Hashing's fields)
        and no vocabulary, (rows, n_features) signed counts of the columns the tokens hash to."""
        columns = self.columns_of.get(x)
        if len(self.inputs) != 1 or columns is None or len(columns) != 1 or columns[0] is None:
            raise UnsupportedModelError(
                f"{owner}: reads text from one input column (the model's input, or one column a ColumnTransformer "
                "selects), not from computed features"
            )
        column = int(columns[0])
        if column in self.vocabularies:
            raise UnsupportedModelError(f"{owner}: input column {column} is read both as categories and as text")
        source, feature = self.inputs[0], len(self.texts)
        terms_of = {"vocabulary": list(vocabulary)} if hashing is None else {"hashing": hashing}
        self.texts.append({"column": column, **settings, **terms_of})
        # (the number of features is set on these nodes once every vectorizer is known: model_ir)
        layout = {"start": int(source.shape[1] or 0), "features": 0, "feature": feature}
        terms = self._node("TextTerms", source.name, **layout)
        width = len(vocabulary) if hashing is None else int(hashing["n_features"])
        return self.sparse_tensor(terms, self._node("TextCounts", source.name, **layout), width)

    def sparse_tensor(self, terms: str, values: str, width: int) -> str:
        """A sparse (rows, width) tensor: each row's ``terms`` (int32 column indices, distinct, a padding
        slot's value 0) and their ``values``."""
        name = self._fresh("sparse")
        self.sparse[name] = (terms, values, width)
        return name

    def concat(self, parts: list[tuple[str, int]]) -> str:
        """Tensors side by side (with their widths); kept as parts where one is sparse."""
        if any(p in self.sparse or p in self.composites for p, _ in parts):
            name = self._fresh("composite")
            self.composites[name] = [q for p, n in parts for q in self.composites.get(p, [(p, n)])]
            return name
        return self.op("Concat", *(p for p, _ in parts))

    def dense(self, x: str) -> str:
        """``x`` as a dense tensor: a sparse one scattered into its columns, a composite's parts joined."""
        if x not in self.sparse and x not in self.composites:
            return x
        if x not in self._densified:
            if x in self.sparse:
                terms, values, width = self.sparse[x]
                self._densified[x] = self._node("ScatterColumns", terms, values, width=width)
            else:
                self._densified[x] = self._node("Concat", *(self.dense(p) for p, _ in self.composites[x]))
        return self._densified[x]

    def _sparse_op(self, op: str, inputs: tuple[str, ...], attrs: dict[str, Any]) -> str | None:
        """The sparse form of ``op`` on a sparse first input, where it has one (else None)."""
        x, rest = inputs[0], inputs[1:]
        if any(i in self.sparse or i in self.composites for i in rest):
            return None
        weights = self.tensors.get(rest[0]) if rest else None
        if x in self.composites and op == "Gemm" and weights is not None:
            # the parts' products with their rows of the weights, summed
            products, offset = [], 0
            for part, width in self.composites[x]:
                rows = self.const("weights", np.asarray(weights)[offset : offset + width])
                products.append(self.op("Gemm", part, rows))
                offset += width
            total = functools.reduce(lambda a, b: self._node("Add", a, b), products)
            return self._node("Add", total, rest[1]) if len(rest) > 1 else total
        if x not in self.sparse:
            return None
        terms, values, width = self.sparse[x]
        if op == "Gemm" and weights is not None:
            return self._node("SparseGemm", terms, values, *rest)
        zero_kept = op in ("SublinearTf", "Normalize") or (op == "Clip" and attrs["low"] <= 0 <= attrs["high"])
        if zero_kept and not rest:
            return self.sparse_tensor(terms, self._node(op, values, **attrs), width)
        if op in ("Mul", "Div") and weights is not None and np.ndim(weights) <= 1:
            if np.ndim(weights) == 1 and len(weights) != width:
                return None
            scale = rest[0] if np.ndim(weights) == 0 else self._node("GatherValues", rest[0], terms)
            return self.sparse_tensor(terms, self._node(op, values, scale), width)
        return None

    def refuse_rows(self, flag: str, message: str) -> None:
        """The rows where ``flag`` is non-zero raise ``message`` (an ``InputError``) at run time."""
        self.refusals.append((flag, message))

    def refuse_negative(self, x: str, width: int, message: str) -> None:
        """The rows of 2-D ``x`` (``width`` columns) with a negative entry raise ``message`` at run time."""
        lowest, highest = self.const("lowest", np.zeros(width)), self.const("highest", np.full(width, np.inf))
        self.refuse_rows(self.op("OutsideRange", x, lowest, highest), message)

    def take_columns(self, x: str, columns: np.ndarray, hint: str) -> str:
        """Columns ``columns`` of 2-D ``x``, still known as input columns where ``x``'s are."""
        out = self.op("TakeColumns", x, self.const(hint, np.asarray(columns, dtype=np.int32)))
        if x in self.columns_of:
            self.columns_of[out] = [self.columns_of[x][c] for c in columns]
        return out

    def unused_columns(self) -> list[int]:
        """The columns of a 2-D input that no node reads: every node that takes the input is a column
        selection (TakeColumns with stored indices) that leaves them out, as a ColumnTransformer's dropped
        columns. Any other reader of the input counts as reading every column."""
        if len(self.inputs) != 1 or self.inputs[0].name not in self.columns_of:
            return []
        name = self.inputs[0].name
        used: set[int] = {t["column"] for t in self.texts}  # read by the runtime's text step
        for node in self.nodes:
            if name not in node.inputs:
                continue
            if node.op in ("TextTerms", "TextCounts"):  # text features, after the input's own columns
                continue
            if node.op != "TakeColumns" or node.inputs[0] != name or node.inputs[1] not in self.tensors:
                return []
            used.update(np.asarray(self.tensors[node.inputs[1]]).reshape(-1).tolist())
        return sorted({c for c in self.columns_of[name] if c is not None} - used)

    def split_input_columns(self, outputs: set[str]) -> dict[str, list[int | None]]:
        """For each computed tensor that trees or bins split (TreeEnsemble, BinIndex v2) and that carries
        input columns (a ColumnTransformer's side by side, say): the input column each of its columns
        holds, None for a computed one. The runtime narrows float64 inputs for those splits exactly
        (mle_runtime/narrowing.py); it finds the model input itself."""
        if len(self.inputs) != 1:
            return {}
        found = {}
        for node in self.nodes:
            if not (node.op == "TreeEnsemble" or (node.op == "BinIndex" and node.version == 2)):
                continue
            x = node.inputs[0]
            columns = self.columns_of.get(x)
            if x == self.inputs[0].name or x in outputs or columns is None or all(c is None for c in columns):
                continue
            found[x] = [None if c is None else int(c) for c in columns]
        return found

    def resolve(self) -> None:
        """Fix every deferred tensor (string codes) now that all vocabularies are known."""
        index = {column: {s: i for i, s in enumerate(sorted(v))} for column, v in self.vocabularies.items()}
        for name, (column, values) in self._deferred.items():
            codes = [np.nan if is_missing_category(v) else NONE_CODE if v is None else index[column][v] for v in values]
            self.tensors[name] = np.array(codes, dtype=np.float64)
        self._deferred.clear()

    def const(self, hint: str, value: Any) -> str:
        """Add a parameter tensor (stored in the file, passed to the jitted function as an argument)."""
        return self._const(self._fresh(hint), value)

    def shared_const(self, key: Hashable, hint: str, value: Any) -> str:
        """``const``, stored once for every call with the same ``key`` and an equal value (a layer's weight
        that each call of a shared layer reads, a parameter's transpose that each step of an RNN reads). The
        key says what the tensor is, never its values alone: models of one structure keep one graph (a
        stack's models must), whatever values two of their tensors happen to share."""
        array = np.asarray(value)
        name = self._shared.get(key)
        if name is not None:
            stored = self.tensors[name]
            if stored.dtype == array.dtype and stored.shape == array.shape and np.array_equal(stored, array):
                return name
        name = self._shared[key] = self.const(hint, array)
        return name

    def host_tensor(self, hint: str, value: Any) -> str:
        """Add a tensor for a host-side step: stored in the file, read by the runtime before the graph."""
        name = self._const(self._fresh(hint), value)
        self.host_tensors.add(name)
        return name

    def const_beside(self, tensor: str, suffix: str, value: Any) -> str:
        """A parameter named ``<tensor>_<suffix>`` after one already added, taking no number: a tensor that
        one model has and a model of the same structure may not leaves every other name as it is (the
        models of a stack must agree on them)."""
        name = f"{tensor}_{suffix}"
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} is already defined")
        return self._const(name, value)

    def _const(self, name: str, value: Any) -> str:
        array = np.asarray(value)  # not ascontiguousarray: it turns a 0-d scalar into shape (1,)
        self.tensors[name] = array if array.flags.c_contiguous else array.copy(order="C")
        return name

    def op(self, op: str, *inputs: str, n_out: int = 1, version: int = 1, **attrs: Any) -> Any:
        """Append a node; returns its output name (or a tuple of names when n_out > 1). A sparse input
        takes the op's sparse form where it has one, else is read dense."""
        if (self.sparse or self.composites) and inputs:
            rewritten = self._sparse_op(op, inputs, attrs) if n_out == 1 and version == 1 else None
            if rewritten is not None:
                return rewritten
            inputs = tuple(self.dense(i) for i in inputs)
        return self._node(op, *inputs, n_out=n_out, version=version, **attrs)

    def _node(self, op: str, *inputs: str, n_out: int = 1, version: int = 1, **attrs: Any) -> Any:
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


def distinct_outputs(b: GraphBuilder, tensors: list[str], inputs: Sequence[str]) -> list[str]:
    """A network's output tensors, each its own: one returned twice (an LSTM's output and its last state
    h are one tensor) or an input returned as it is goes through an Identity node, as every output of a
    graph is a tensor of its own name."""
    seen, out = set(inputs), []
    for t in tensors:
        out.append(b.op("Identity", t) if t in seen else t)
        seen.add(out[-1])
    return out


def model_ir(b: GraphBuilder, converted: Converted, metadata: dict[str, Any]) -> ModelIR:
    """The finished model: run outputs first (in order), then the others by name; the task, the run
    outputs and the classes added to ``metadata``."""
    outputs = {role: b.dense(tensor) for role, tensor in converted.outputs.items()}
    metadata = {**metadata, "task": converted.task, "run_outputs": converted.run_outputs}
    if b.texts:  # now that every text feature is known, the layout's count of them
        b.nodes = [
            dataclasses.replace(n, attrs={**n.attrs, "features": len(b.texts)})
            if n.op in ("TextTerms", "TextCounts")
            else n
            for n in b.nodes
        ]
    if b.refusals:
        flags, messages = zip(*b.refusals, strict=True)
        if len(flags) == 1:
            outputs["invalid"] = flags[0]
        else:  # one column per check, and its message
            outputs["invalid"] = b.op("Concat", *(b.op("ExpandLast", f) for f in flags))
            metadata["invalid_messages"] = list(messages)
        metadata["invalid_message"] = messages[0]
    order = converted.run_outputs + sorted(set(outputs) - set(converted.run_outputs))
    split_columns = b.split_input_columns(set(outputs.values()))
    if split_columns:
        metadata["split_input_columns"] = split_columns
    b.resolve()
    graph = b.finish({name: outputs[name] for name in order})
    read = {i for n in graph.nodes for i in n.inputs}
    unread = [t for t in b.tensors if t not in read and t not in b.host_tensors]
    for name in unread:  # (weights split by the parts that read them)
        del b.tensors[name]
    if b.texts:  # the input widens by the text features' columns, as many as a batch's documents need
        graph = Graph((ValueInfo(b.inputs[0].name, (None, None)),), graph.outputs, graph.nodes)
        metadata["text_features"] = b.texts
    if b.vocabularies:
        metadata["string_columns"] = {str(c): sorted(v) for c, v in sorted(b.vocabularies.items())}
        metadata["none_code"] = NONE_CODE
    unused = b.unused_columns()
    if unused:
        metadata["unused_columns"] = unused
    if converted.multilabel:
        metadata["multilabel"] = True
    if converted.neighbors_graph is not None:
        metadata["neighbors_graph"] = converted.neighbors_graph
    if isinstance(converted.classes, list):
        metadata["output_classes"] = [encode_classes(c) for c in converted.classes]
    elif converted.classes is not None:
        metadata.update(encode_classes(converted.classes))
    return ModelIR(graph, b.tensors, metadata)


def booster_metadata(
    framework: str, version: str, model: Any, n_features: int, objective: str, feature_names: Any = None
) -> dict[str, Any]:
    """The metadata of a gradient-boosting library's model: they all take NaN as a missing value, and
    infinities as numbers (XGBoost's scikit-learn predict does; its DMatrix refuses them)."""
    metadata: dict[str, Any] = {
        "framework": framework,
        "framework_version": version,
        "estimator": f"{framework}.{type(model).__name__}",
        "n_features": n_features,
        "allow_nan": True,
        "allow_inf": True,
        "objective": objective,
    }
    if feature_names is not None and len(feature_names):
        metadata["feature_names"] = [str(c) for c in feature_names]
    return metadata
