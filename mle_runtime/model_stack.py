"""Many models of one graph structure evaluated as one XLA program: ``mle.stack(models_or_paths)``.

CV folds, bootstraps, hyper-parameter sweeps and per-segment models share a graph and differ in their
weights. Their parameters are stacked along a leading model axis and each node of the graph is
``jax.vmap``-ed over it (``lowering.build_stack_function``; a tree ensemble reading an input every model
shares walks all the models' trees as one forest, their split tables merged into one forest's), so one
compiled program (per batch bucket) evaluates every model. Graphs must match node for node (ops, wiring,
attributes, input specs); each parameter must have one shape across the models, except tree ensembles,
whose node, leaf and category arrays are padded with unreachable entries to the longest and whose missing
trees are single zero leaves, so forests of different sizes and depths stack. Anything else that differs
is refused, naming the first difference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from mle_runtime import buckets
from mle_runtime.graph import Graph
from mle_runtime.inputs import (
    as_input_list,
    check_finite,
    coerce_input,
    converted,
    is_sparse,
    one_column,
    sparse_block_rows,
)
from mle_runtime.lowering import build_stack_function, compile_program
from mle_runtime.ops.trees import DEFAULT_LEFT, FLAG_BITS, LEAF, SPLIT_TABLES
from mle_runtime.runtime import MLERuntime, load_model

# TreeEnsemble's tensor operands after x, in order, and which of them grow with the trees' nodes or leaves.
_TREE_OPERANDS = ("nodes", "thresholds", "leaf_values", "tree_nodes", "tree_leaves", "cat_bits", "cat_limits")
_PER_NODE, _PER_LEAF, _PER_TREE = ("nodes", "thresholds"), ("leaf_values",), ("tree_nodes", "tree_leaves")

# A stack's CPU chunks are twice a single model's: the chunks of a batch are merged by copying every
# model's outputs, which for cheap models costs as much as computing them (100 LogisticRegressions at
# 10,000 rows, 2 cores: 8,192 + 2,048-row chunks 1.8-2.0 ms a call, of which the merge 0.45 ms; one
# 10,240-row chunk 1.26-1.30 ms). Networks' chunks stay bounded by their activations (buckets.cpu_chunk).
STACK_CPU_MAX_BUCKET = 2 * buckets.CPU_MAX_BUCKET


def stack(models: Sequence[Any], device: str = "cpu", **options: Any) -> ModelStack:
    """Stack loaded runtimes or .mle paths (loaded with ``device`` and ``options``, as ``load_model``)."""
    if isinstance(models, (str, os.PathLike)) or not len(models):
        raise ValueError("stack() takes a non-empty list of .mle paths or loaded runtimes")
    runtimes = [m if isinstance(m, MLERuntime) else load_model(m, device=device, **options) for m in models]
    return ModelStack(runtimes)


class ModelStack:
    """Models with one graph structure; ``run`` answers for all of them with a leading model axis."""

    def __init__(self, runtimes: Sequence[MLERuntime]):
        self.runtimes = list(runtimes)
        first = self.runtimes[0]
        first._require()
        for i, r in enumerate(self.runtimes[1:], 1):
            r._require()
            for what in ("precision", "device"):
                if getattr(r, what) != getattr(first, what):
                    raise ValueError(f"model {i} has {what} {getattr(r, what)!r}, model 0 {getattr(first, what)!r}")
            _check_same_columns(first, r, i)
        graphs = [r._file.graph for r in self.runtimes]  # type: ignore[union-attr]
        graph_json, stacked, shared_params = _merge(graphs, [r._params for r in self.runtimes])
        self._params = {**stacked, **shared_params}
        self._shared = frozenset(shared_params)
        self._graph = Graph.from_json(graph_json, set(self._params))
        self._input_names = [s.name for s in self._graph.inputs]
        self._functions: dict[tuple[str, ...], Any] = {}
        self._template = first
        self._device = first._jax_device
        with first._scope():  # (float64 parameters stay float64 in float64 precision)
            self._params = jax.device_put(self._params, self._device)
        n_models = len(self.runtimes)
        per_row = first._require().metadata.get("largest_activation_bytes_per_row")
        self._max_bucket = first._max_bucket
        if self._device.platform == "cpu":
            rows = per_row * n_models if isinstance(per_row, int) else None
            self._max_bucket = buckets.cpu_chunk(STACK_CPU_MAX_BUCKET, rows)
        self._compiled: dict[tuple[Any, ...], Any] = {}
        # One class list for every model (the usual case) decodes with one lookup, or none at all.
        shared = first._classes
        same = shared is not None and all(
            r._classes is not None and np.array_equal(r._classes, shared) for r in runtimes
        )
        self._shared_classes = shared if same else None
        self._classes_are_indices = bool(
            shared is not None and same and shared.dtype.kind in "iu" and np.array_equal(shared, np.arange(len(shared)))
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its runtimes (each its model file's bytes), stacked again when unpickled."""
        return ModelStack, (self.runtimes,)

    def __len__(self) -> int:
        return len(self.runtimes)

    @property
    def outputs(self) -> list[str]:
        return self._template._run_outputs()

    def run(self, inputs: Any) -> list[np.ndarray]:
        """Every model's outputs (as ``MLERuntime.run``), each with a leading model axis. An input may be
        shared (the model's shape) or per model (one more leading axis, of ``len(stack)``)."""
        return self._evaluate(inputs, tuple(self.outputs))

    def predict(self, X: Any) -> np.ndarray:
        """Every model's labels (classifiers) or predictions (regressors), (models, rows, ...)."""
        name = "label" if "label" in self._graph.outputs else "predictions"
        return self._evaluate([X], (name,))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Every model's class probabilities, (models, rows, classes); only they are computed."""
        if "probabilities" not in self._graph.outputs:
            raise AttributeError(f"these models have no predict_proba() (outputs: {list(self._graph.outputs)})")
        return self._evaluate([X], ("probabilities",))[0]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Every model's log class probabilities, as ``MLERuntime.predict_log_proba`` computes them."""
        if "log_probabilities" in self._graph.outputs:
            return self._evaluate([X], ("log_probabilities",))[0]
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def _function(self, names: tuple[str, ...]) -> Any:
        """The graph cut down to ``names`` (and the rows the models refuse): nothing else is computed."""
        if names not in self._functions:
            refused = "invalid" in self._graph.outputs and "invalid" not in names
            wanted = (*names, "invalid") if refused else names
            graph = Graph(self._graph.inputs, wanted, self._graph.nodes)
            self._functions[names] = build_stack_function(graph, len(self), self._shared)
        return self._functions[names]

    def _evaluate(self, inputs: Any, names: tuple[str, ...]) -> list[np.ndarray]:
        given = as_input_list(inputs, self._input_names)
        if len(given) == 1 and is_sparse(given[0]):  # made dense a block of rows at a time, as a runtime does
            rows, block = given[0].tocsr(), sparse_block_rows(given[0])
            if rows.shape[0] > block:
                parts = [self._evaluate([rows[i : i + block]], names) for i in range(0, rows.shape[0], block)]
                return [np.concatenate(outputs, axis=1) for outputs in zip(*parts, strict=True)]
        arrays, per_model = self._prepare(given)
        n = arrays[0].shape[1 if per_model[0] else 0]

        def dispatch(start: int, stop: int, bucket: int) -> list[jax.Array]:
            chunk = [a[:, start:stop] if p else a[start:stop] for a, p in zip(arrays, per_model, strict=True)]
            return self._dispatch(names, chunk, per_model, bucket)

        with self._template._scope():
            merged = buckets.gather_chunks(n, self._max_bucket, dispatch, axis=1)
        named = dict(zip((*names, "invalid"), merged, strict=False))
        if "invalid" in named and np.any(named["invalid"]):
            raise ValueError("the models cannot answer for some rows (run one model for the details)")
        if "label" in named:
            named["label"] = self._labels(named["label"])
        return [named[name] for name in names]

    def as_jax(self) -> tuple[Any, dict[str, jax.Array]]:
        """``(fn, params)``: ``fn(params, *inputs)`` returns a dict of outputs with a leading model axis,
        for inputs shared by every model; ``params`` carry the model axis first, but for the split tables
        of tree ensembles merged into one forest's (named ``stack_<table>_<node>``), which the models share."""
        stack_fn, outputs = self._function(self._graph.outputs), self._graph.outputs

        def fn(params: dict[str, jax.Array], *inputs: jax.Array) -> dict[str, jax.Array]:
            return dict(zip(outputs, stack_fn(params, inputs, [False] * len(inputs)), strict=True))

        return fn, dict(self._params)

    # -- internals -------------------------------------------------------------------------------
    def _prepare(self, given: list[Any]) -> tuple[list[Any], list[bool]]:
        specs = self._graph.inputs
        if len(given) != len(specs):
            raise ValueError(f"the models take {len(specs)} input(s) {[s.name for s in specs]}, got {len(given)}")
        t = self._template
        dtype = np.dtype(t.precision)
        if t._one_dimensional:
            given = one_column(given)
        arrays: list[Any] = []
        per_model: list[bool] = []
        for i, (x, spec) in enumerate(zip(given, specs, strict=True)):
            sliced = np.ndim(x) == len(spec.shape) + 1 and not hasattr(x, "columns")
            a: Any
            if sliced and len(x) != len(self):
                raise ValueError(f"input {spec.name!r}: a per-model input needs {len(self)} slices, got {len(x)}")
            # float64 values for trees that split in float64 are narrowed as each model's runtime narrows
            # them (narrowing.py): the models' thresholds differ, so the input becomes one per model
            float32 = getattr(x, "dtype", None) == np.float32  # (nothing to narrow: no model's plan is read)
            fixes = [] if float32 else [r._narrowing.get(i) for r in self.runtimes]
            if any(fixes):
                wide64 = np.dtype(np.float64)
                if sliced:
                    wide = [coerce_input(xi, spec, wide64, t._feature_names, t._strings, t._by_name) for xi in x]
                else:
                    wide = [coerce_input(x, spec, wide64, t._feature_names, t._strings, t._by_name)] * len(self)
                a = _NarrowedPerModel(wide, fixes, dtype)
                per_model.append(True)
            elif sliced:
                a = np.stack([coerce_input(xi, spec, dtype, t._feature_names, t._strings, t._by_name) for xi in x])
                per_model.append(True)
            else:
                a = coerce_input(x, spec, dtype, t._feature_names, t._strings, t._by_name)
                per_model.append(False)
            arrays.append(a)
        rows = {a.shape[1 if p else 0] for a, p in zip(arrays, per_model, strict=True)}
        if len(rows) > 1:
            raise ValueError(f"inputs disagree on the number of rows: {sorted(rows)}")
        return arrays, per_model

    def _dispatch(
        self, names: tuple[str, ...], arrays: list[np.ndarray], per_model: list[bool], bucket: int
    ) -> list[jax.Array]:
        """Start the program on one chunk (padded to ``bucket`` rows) and check its inputs' values while it
        runs (where dispatch is asynchronous); its outputs may still be computing."""
        padded = [buckets.padded_rows(a, bucket, axis=1 if p else 0) for a, p in zip(arrays, per_model, strict=True)]
        key = (names, tuple(per_model), tuple((a.shape, a.dtype.str) for a in padded))
        compiled = self._compiled.get(key)
        if compiled is None:
            stack_fn, flags = self._function(names), tuple(per_model)

            def program(params: dict[str, jax.Array], inputs: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
                return stack_fn(params, inputs, flags)

            compiled = compile_program(program, (self._params, tuple(padded)), self._device.platform)
            self._compiled[key] = compiled
        running = list(compiled(self._params, tuple(padded)))
        allow_nan = self._template._allow_nan
        if allow_nan is not None:
            for a, spec in zip(arrays, self._graph.inputs, strict=True):
                check_finite(self._template._caller_columns(a), spec.name, allow_nan, self._template._allow_inf)
        return running

    def _labels(self, index: np.ndarray) -> np.ndarray:
        classes = [r._classes for r in self.runtimes]
        if classes[0] is None:
            return index
        if self._shared_classes is not None:
            shared = self._shared_classes
            if self._classes_are_indices:
                return index.astype(shared.dtype)  # labels 0..k-1: the index is the label
            return shared[index]
        return np.stack([c[i] for c, i in zip(classes, index, strict=True)])  # type: ignore[index]


class _NarrowedPerModel:
    """A float64 input as each model narrows it (one copy per model), made a chunk of rows at a time when
    the stack's program takes it (``[:, start:stop]``): the whole input's copies would take models x rows x
    features x 4 bytes at once (1.6 GB for 20 models over 1,000,000 rows of 20 features)."""

    def __init__(self, wide: list[np.ndarray], fixes: list[Any], dtype: np.dtype[Any]):
        self.wide, self.fixes, self.dtype = wide, fixes, dtype
        self.shape = (len(wide), *wide[0].shape)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        _, rows = key
        return np.stack([_narrowed(w[rows], fix, self.dtype) for w, fix in zip(self.wide, self.fixes, strict=True)])


def _narrowed(wide: np.ndarray, fix: Any, dtype: np.dtype[Any]) -> np.ndarray:
    narrow = converted(wide, dtype)
    if fix is not None:
        fix.apply(wide, narrow)
    return narrow


def _check_same_columns(first: MLERuntime, other: MLERuntime, i: int) -> None:
    """The stack codes its input once, as model 0 does: every model must read the columns alike (the same
    vocabulary for each string column, or a string would reach a model as another one's code; the same
    columns left unread, or one would reach a model that reads it as 0; the same text analysers and
    vocabularies, or a term's count would land in another one's column; the same CatBoost counter tables,
    or a model would read another one's counts; the same feature names, taken alike, or a DataFrame's
    columns would reach a model in another one's order; None coded alike, or a file written before None
    was a category of its own, which reads None as NaN, would be handed another's code for it)."""
    steps = ("string_columns", "none_code", "unused_columns", "text_features", "catboost_categories")
    for key in (*steps, "feature_names", "columns_by_name"):
        mine, theirs = first._require().metadata.get(key), other._require().metadata.get(key)
        if mine == theirs:
            continue
        detail = f"{theirs!r:.80} vs {mine!r:.80}"
        if key == "string_columns":
            mine, theirs = mine or {}, theirs or {}
            column = next(c for c in sorted(set(mine) | set(theirs)) if mine.get(c) != theirs.get(c))
            only = sorted(set(mine.get(column, [])) ^ set(theirs.get(column, [])))
            detail = f"column {column}: categories {only[:5]} are in one vocabulary only"
        raise ValueError(
            f"model {i} cannot stack with model 0: their {key.replace('_', ' ')} differ ({detail}); stacked models "
            "must read their input columns alike (string columns: trained on the same categories; text columns: "
            "on the same vocabulary; CatBoost's categorical features: with the same counter tables)"
        )


# -- merging graphs and parameters -----------------------------------------------------------------


def _merge(
    graphs: list[dict[str, Any]], params: list[dict[str, jax.Array]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One graph for all models, their parameters stacked, and the parameters they share (the split
    tables of the models' tree ensembles merged into one forest's); ValueError names the first difference."""
    host = [{k: np.asarray(v) for k, v in p.items()} for p in params]
    tables = [_split_tables_of(g, h) for g, h in zip(graphs, host, strict=True)]
    graphs = [_without_split_tables(g, h) for g, h in zip(graphs, host, strict=True)]
    graphs = _tree_layouts_in_common(graphs, host)
    first = graphs[0]
    merged_nodes = [dict(n) for n in first["nodes"]]
    for i, g in enumerate(graphs[1:], 1):
        for key in ("inputs", "outputs"):
            if g.get(key) != first.get(key):
                raise ValueError(
                    f"model {i} cannot stack with model 0: graph {key} differ ({g.get(key)} vs {first.get(key)})"
                )
        if len(g["nodes"]) != len(first["nodes"]):
            raise ValueError(
                f"model {i} cannot stack with model 0: {len(g['nodes'])} nodes against {len(first['nodes'])}"
            )
        for k, (a, b) in enumerate(zip(g["nodes"], first["nodes"], strict=True)):
            for field in ("op", "version", "inputs", "outputs"):
                if a.get(field) != b.get(field):
                    raise ValueError(
                        f"model {i} cannot stack with model 0: node #{k} {field} is {a.get(field)!r}, "
                        f"not {b.get(field)!r}"
                    )
            if a["op"] == "TreeEnsemble":
                merged_nodes[k]["attrs"] = _merge_tree_attrs(merged_nodes[k].get("attrs", {}), a.get("attrs", {}), i, k)
            elif a.get("attrs", {}) != b.get("attrs", {}):
                raise ValueError(
                    f"model {i} cannot stack with model 0: node #{k} ({a['op']}) attributes differ: "
                    f"{_first_difference(a.get('attrs', {}), b.get('attrs', {}))}"
                )
    shared: dict[str, np.ndarray] = {}
    for k, node in enumerate(merged_nodes):
        if node["op"] == "TreeEnsemble":
            tree_nodes = dict(zip(_TREE_OPERANDS, node["inputs"][1:], strict=False))["tree_nodes"]
            counts = [len(h[tree_nodes]) for h in host]
            _pad_trees(node, host)
            attrs = {key: v for key, v in node.get("attrs", {}).items() if key != "tree_counts"}
            # (the trees padding adds are left out of the merged walk: see ops/trees.py, stacked_tree_ensemble)
            node["attrs"] = {**attrs, "tree_counts": counts} if len(set(counts)) > 1 else attrs
            if any(k in t for t in tables) and node["attrs"].get("layout", "bfs") == "bfs":
                groups, merged = _merged_split_tables([t.get(k) for t in tables], counts, len(host[0][tree_nodes]))
                names = [f"stack_{s}_{k}" for s in SPLIT_TABLES]
                shared.update(zip(names, merged, strict=True))
                node["inputs"] = [*node["inputs"], *names]
                node["attrs"] = {**node["attrs"], "split_groups": groups}
    stacked = {}
    for name in host[0]:
        shapes = {h[name].shape for h in host}
        dtypes = {h[name].dtype for h in host}
        if len(shapes) > 1 or len(dtypes) > 1:
            raise ValueError(
                f"tensor {name!r} differs across the models ({sorted(map(str, shapes))}, {sorted(map(str, dtypes))}); "
                "only tree ensembles are padded to a common shape"
            )
        stacked[name] = np.stack([h[name] for h in host])
    return {**first, "nodes": merged_nodes}, stacked, shared


def _tree_layouts_in_common(graphs: list[dict[str, Any]], host: list[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """The graphs (and ``host``) with each set of k-th tree ensembles in one layout (a sweep over max_depth
    gives shallow trees stored as heaps of their depth, deeper ones breadth-first): heaps alone are
    deepened to the deepest (each leaf slot leads down always-left splits to its new slot); heaps beside
    breadth-first trees, or heaps of different tree counts (padded with single-leaf trees, which a heap
    cannot be), become breadth-first trees. Any other difference is left to ``_merge`` to name."""
    graphs = [{**g, "nodes": [dict(n) for n in g["nodes"]]} for g in graphs]
    for k in range(min(len(g["nodes"]) for g in graphs)):
        nodes = [g["nodes"][k] for g in graphs]
        if any(n.get("op") != "TreeEnsemble" for n in nodes):
            continue
        attrs = [n.get("attrs", {}) for n in nodes]
        names = [dict(zip(_TREE_OPERANDS, n["inputs"][1:], strict=False)) for n in nodes]
        heaps = [a.get("layout") == "perfect" for a in attrs]
        counts = {len(h[m["tree_nodes"]]) for h, m in zip(host, names, strict=True)}
        if all(heaps) and len(counts) == 1:
            depth = max(a["depth"] for a in attrs)
            for n, a, h, m in zip(nodes, attrs, host, names, strict=True):
                if a["depth"] != depth:
                    _deepen_heaps(m, h, a, depth)
                    n["attrs"] = {**a, "depth": depth}
        elif any(heaps):
            for n, a, h, m, heap in zip(nodes, attrs, host, names, heaps, strict=True):
                if heap:
                    _heaps_breadth_first(m, h, a)
                    n["attrs"] = {key: v for key, v in a.items() if key != "layout"}
            if len({h[m["nodes"]].ndim for h, m in zip(host, names, strict=True)}) > 1:
                for h, m, a in zip(host, names, attrs, strict=True):  # one word a node where all fit, else two
                    h[m["nodes"]] = _two_words(h[m["nodes"]], a["feature_bits"])
        _linear_terms_in_common(nodes, attrs, host, names)
        for key in _PER_TREE:  # one offset dtype for all (a relaid model's offsets are int32)
            widest = np.result_type(*(h[m[key]].dtype for h, m in zip(host, names, strict=True)))
            for h, m in zip(host, names, strict=True):
                h[m[key]] = h[m[key]].astype(widest)
    return graphs


def _linear_terms_in_common(
    nodes: list[dict[str, Any]], attrs: list[dict[str, Any]], host: list[dict[str, np.ndarray]], names: list[dict]
) -> None:
    """LightGBM linear trees with leaves of fewer terms than the most any model has, widened to it (zero
    coefficients of feature 0, none); a plain ensemble beside them has leaves of no terms, their constant
    the leaf value."""
    terms = max(a.get("linear_terms", 0) for a in attrs)
    if not terms:
        return
    for n, a, h, m in zip(nodes, attrs, host, names, strict=True):
        own, values = a.get("linear_terms", 0), h[m["leaf_values"]]
        if own == terms:
            continue
        if values.shape[1] != (2 + 2 * own if own else 1):
            raise ValueError(
                f"a plain tree ensemble of {values.shape[1]} outputs a leaf cannot stack with linear trees"
            )
        wide = np.zeros((len(values), 2 + 2 * terms), values.dtype)
        wide[:, 0] = values[:, 0]
        wide[:, 1] = values[:, 1] if own else values[:, 0]
        wide[:, 2 : 2 + own] = values[:, 2 : 2 + own]
        wide[:, 2 + terms : 2 + terms + own] = values[:, 2 + own :]
        h[m["leaf_values"]] = wide
        n["attrs"] = {**n.get("attrs", {}), "linear_terms": terms}  # (the layout may have changed above)


def _deepen_heaps(names: dict[str, str], h: dict[str, np.ndarray], attrs: dict[str, Any], depth: int) -> None:
    """One model's perfect-layout trees, heaps of ``attrs["depth"]`` levels, as heaps of ``depth``: the new
    levels' splits always go left (threshold +inf, missing values left)."""
    old = attrs["depth"]
    trees = len(h[names["tree_nodes"]])
    inner, slots, new_inner, new_slots = (1 << old) - 1, 1 << old, (1 << depth) - 1, 1 << depth
    words = h[names["nodes"]].reshape(trees, inner)
    thresholds = h[names["thresholds"]].reshape(trees, inner)
    values = h[names["leaf_values"]]
    values = values.reshape(trees, slots, *values.shape[1:])
    new_words = np.full((trees, new_inner), DEFAULT_LEFT << attrs["feature_bits"], dtype=words.dtype)
    new_words[:, :inner] = words
    new_thresholds = np.full((trees, new_inner), np.inf, dtype=thresholds.dtype)
    new_thresholds[:, :inner] = thresholds
    new_values = np.zeros((trees, new_slots, *values.shape[2:]), dtype=values.dtype)
    new_values[:, np.arange(slots) << (depth - old)] = values
    h[names["nodes"]], h[names["thresholds"]] = new_words.reshape(-1), new_thresholds.reshape(-1)
    h[names["leaf_values"]] = new_values.reshape(trees * new_slots, *values.shape[2:])
    h[names["tree_nodes"]], h[names["tree_leaves"]] = _offsets(trees, new_inner), _offsets(trees, new_slots)


def _heaps_breadth_first(names: dict[str, str], h: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    """One model's perfect-layout trees in the breadth-first layout: heap order is breadth-first with
    siblings adjacent, so node i's left child is 2i + 1, and the heap's leaf slots become leaf nodes
    reading their slot's row of the leaf values (unchanged)."""
    depth, bits = attrs["depth"], attrs["feature_bits"]
    trees = len(h[names["tree_nodes"]])
    inner, slots = (1 << depth) - 1, 1 << depth
    head = np.concatenate(
        [h[names["nodes"]].reshape(trees, inner).astype(np.int64), np.full((trees, slots), LEAF << bits)], axis=1
    )
    child = np.broadcast_to(np.concatenate([2 * np.arange(inner) + 1, np.arange(slots)]), head.shape)
    if bits + FLAG_BITS + (2 * slots).bit_length() <= 31:  # (a packed word stays a non-negative int32)
        nodes = (head | (child << (bits + FLAG_BITS))).reshape(-1)
    else:
        nodes = np.stack([head.reshape(-1), child.reshape(-1)], axis=1)
    h[names["nodes"]] = nodes.astype(np.int32)
    thresholds = h[names["thresholds"]].reshape(trees, inner)
    h[names["thresholds"]] = np.concatenate([thresholds, np.zeros((trees, slots), thresholds.dtype)], axis=1).reshape(
        -1
    )
    h[names["tree_nodes"]] = _offsets(trees, inner + slots)


def _offsets(trees: int, per_tree: int) -> np.ndarray:
    """Each tree's first entry, int32 (``_tree_layouts_in_common`` gives all models one offset dtype)."""
    return (np.arange(trees) * per_tree).astype(np.int32)


def _two_words(nodes: np.ndarray, feature_bits: int) -> np.ndarray:
    """Breadth-first node words as two words a node ([:, 0] feature and flags, [:, 1] child)."""
    if nodes.ndim == 2:
        return nodes
    shift = feature_bits + FLAG_BITS
    return np.stack([nodes & ((1 << shift) - 1), nodes >> shift], axis=1).astype(np.int32)


Tables = tuple[list[list[int]], list[np.ndarray]]


def _split_tables_of(graph: dict[str, Any], host: dict[str, np.ndarray]) -> dict[int, Tables]:
    """Each tree ensemble's split groups and tables (SPLIT_TABLES), by node index, where it has them."""
    found = {}
    for k, node in enumerate(graph["nodes"]):
        groups = node.get("attrs", {}).get("split_groups") if node["op"] == "TreeEnsemble" else None
        if groups is not None:
            found[k] = (groups, [host[name] for name in node["inputs"][-len(SPLIT_TABLES) :]])
    return found


def _merged_split_tables(
    tables: list[Tables | None], counts: list[int], trees: int
) -> tuple[list[list[int]], list[np.ndarray]]:
    """The split groups and tables of every model's ensemble as one forest, model m's tree t being the
    forest's tree m * trees + t (``trees``: each model's count once padded; ``counts``: before). Group by
    group, the models' members follow one another; a model without tables, and the trees padding added,
    are walked. The tables number nodes and leaves within a tree, which padding does not move."""
    by_size: dict[int, list[tuple[np.ndarray, ...]]] = {}
    walked = []
    for m, found in enumerate(tables):
        if found is None:
            walked.append(m * trees + np.arange(trees))
            continue
        groups, (order, slots, ranges, leaf_order) = found
        first = slot = leaf = 0
        for n, leaves in groups:
            rows = slice(slot, slot + n * (leaves - 1))
            part = (m * trees + order[first : first + n].astype(np.int64), slots[rows], ranges[rows])
            by_size.setdefault(leaves, []).append((*part, leaf_order[leaf : leaf + n * leaves]))
            first, slot, leaf = first + n, slot + n * (leaves - 1), leaf + n * leaves
        walked.append(m * trees + np.concatenate([order[first:].astype(np.int64), np.arange(counts[m], trees)]))
    sizes = sorted(by_size)
    parts = [p for size in sizes for p in by_size[size]]
    merged = [np.concatenate([*(p[0] for p in parts), *walked]).astype(np.int32)]
    merged += [np.concatenate([p[i] for p in parts]) for i in (1, 2, 3)]
    return [[sum(len(p[0]) for p in by_size[size]), size] for size in sizes], merged


def _without_split_tables(graph: dict[str, Any], host: dict[str, np.ndarray]) -> dict[str, Any]:
    """The graph with its tree ensembles' split tables dropped (from ``host`` too): their shapes follow
    each model's trees; the stack merges them into one forest's (_merged_split_tables)."""
    nodes = []
    for node in graph["nodes"]:
        if node["op"] == "TreeEnsemble" and node.get("attrs", {}).get("split_groups") is not None:
            count = len(SPLIT_TABLES)
            for name in node["inputs"][-count:]:
                host.pop(name, None)
            attrs = {k: v for k, v in node["attrs"].items() if k != "split_groups"}
            node = {**node, "inputs": node["inputs"][:-count], "attrs": attrs}
        nodes.append(node)
    return {**graph, "nodes": nodes}


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key!r} is {a.get(key)!r} there, {b.get(key)!r} in model 0"
    return "none"


def _merge_tree_attrs(merged: dict[str, Any], other: dict[str, Any], i: int, k: int) -> dict[str, Any]:
    """Tree walks of different depths share the deepest (a leaf stays put); everything else must match,
    and the perfect (heap) layout, whose node numbering depends on the depth, needs one depth."""
    out = dict(merged)
    layouts = merged.get("layout", "bfs"), other.get("layout", "bfs")
    for key in ["layout", *sorted((set(merged) | set(other)) - {"layout"})]:
        theirs, ours = (layouts[1], layouts[0]) if key == "layout" else (other.get(key), merged.get(key))
        if key == "depth" and layouts[0] != "perfect":
            out["depth"] = max(merged["depth"], other["depth"])
        elif theirs != ours:
            raise ValueError(
                f"model {i} cannot stack with model 0: node #{k} (TreeEnsemble) attribute {key!r} is "
                f"{theirs!r} there, {ours!r} in model 0"
            )
    return out


def _pad_trees(node: dict[str, Any], host: list[dict[str, np.ndarray]]) -> None:
    """Give every model's ensemble the same number of trees (zero single-leaf trees added) and the same
    node, leaf and category counts (entries no tree reaches added)."""
    names = dict(zip(_TREE_OPERANDS, node["inputs"][1:], strict=False))
    attrs = node.get("attrs", {})
    trees = max(len(h[names["tree_nodes"]]) for h in host)
    for h in host:
        missing = trees - len(h[names["tree_nodes"]])
        if missing and attrs.get("layout") == "perfect":
            raise ValueError("tree ensembles in the perfect layout with different numbers of trees cannot stack")
        if missing:
            _add_zero_trees(h, names, missing, attrs["feature_bits"])
    for group in (_PER_NODE, _PER_LEAF, ("cat_bits",), ("cat_limits",)):
        present = [names[g] for g in group if g in names]
        if not present:
            continue
        longest = max(len(h[present[0]]) for h in host)
        for h in host:
            for name in present:
                a = h[name]
                h[name] = np.concatenate([a, np.zeros((longest - len(a), *a.shape[1:]), a.dtype)])


def _add_zero_trees(h: dict[str, np.ndarray], names: dict[str, str], count: int, feature_bits: int) -> None:
    nodes = h[names["nodes"]]
    word = np.zeros((count, *nodes.shape[1:]), nodes.dtype)
    if nodes.ndim == 1:
        word[:] = LEAF << feature_bits  # a leaf whose leaf row is 0 (child bits above the flags)
    else:
        word[:, 0] = LEAF << feature_bits
    leaves = h[names["leaf_values"]]
    start_node, start_leaf = len(nodes), len(leaves)
    h[names["nodes"]] = np.concatenate([nodes, word])
    thresholds = h[names["thresholds"]]
    h[names["thresholds"]] = np.concatenate([thresholds, np.zeros(count, thresholds.dtype)])
    h[names["leaf_values"]] = np.concatenate([leaves, np.zeros((count, *leaves.shape[1:]), leaves.dtype)])
    for key, start in (("tree_nodes", start_node), ("tree_leaves", start_leaf)):
        a = h[names[key]]
        h[names[key]] = np.concatenate([a, (start + np.arange(count)).astype(a.dtype)])
