"""PyTorch modules: captured with ``torch.export`` (dynamic batch dimension), decomposed to core ATen,
and each ATen call written as a node of the same name (the ops are in mle_runtime/ops/aten.py).

A node's tensor arguments become its inputs in ATen's order (an absent optional tensor: a zero-size
tensor; a number passed for a tensor: a 0-d tensor), its other arguments attributes named as in the
schema. Sizes computed from the batch dimension are stored as ``{"batch": [a, b]}`` (a * batch + b),
resolved when the graph is traced."""

from __future__ import annotations

import contextlib
import math
import operator
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, distinct_outputs, model_ir
from mle_runtime.converters.batch_rows import refuse_rows_that_mix
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.lowering import has_markers
from mle_runtime.ops import has_op

# ATen ops returning several tensors of which a network uses the first alone (the others are
# statistics or indices kept for training).
_FIRST_OF_SEVERAL = {
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit",
    "native_layer_norm",
    "native_group_norm",
    "max_pool2d_with_indices",
    "max_pool1d_with_indices",
    "max_pool3d_with_indices",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "_embedding_bag",
    "var_mean",
    "max",
    "min",
    "sort",
    "topk",
    "rrelu_with_noise_functional",
}
# ATen ops that check and compute nothing (a cast's dtype assertion): left out of the graph.
_CHECKS = {"aten._assert_tensor_metadata", "aten._assert_scalar", "aten.sym_constrain_range_for_size"}
# ATen ops returning a list of views, which getitem picks from.
_SPLITS = {"split_with_sizes", "split", "unbind"}
# Layout ops folded into a parameter they read (numpy computes them exactly as ATen does).
_LAYOUT_OPS = {
    "aten.permute": lambda t, dims: np.ascontiguousarray(np.transpose(t, dims)),
    "aten.t": lambda t: np.ascontiguousarray(t.T),
    "aten.transpose.int": lambda t, dim0, dim1: np.ascontiguousarray(np.swapaxes(t, dim0, dim1)),
    "aten.view": lambda t, size: t.reshape(size),
    "aten._unsafe_view": lambda t, size: t.reshape(size),
}
# Arguments about memory, not values.
_IGNORED_ARGUMENTS = {"device", "layout", "pin_memory", "memory_format", "non_blocking"}


def convert(model: Any, input_shape: Any, example_inputs: Any = None) -> ModelIR:
    """``input_shape``: (batch, ...) for a module of one tensor input, or one such shape per input of
    ``forward``, in order; ``example_inputs``: a tensor or a tuple of tensors, one per input, whose dtypes
    (an integer tensor of token ids, a bool mask) and shapes past the batch are taken instead."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        if example_inputs is not None:
            raise ValueError("example_inputs is for an nn.Module; a captured program has its inputs already")
        shapes = _program_input_shapes(model, input_shape)
        with _torch_export_warnings_silenced():
            program = model.run_decompositions()
        return _to_ir(model, program, shapes, torch.__version__)
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(
            f"expected a torch.nn.Module or torch.export.ExportedProgram, got {type(model).__name__}"
        )
    training = sorted({name or type(model).__name__ for name, m in model.named_modules() if m.training})
    if training:
        raise UnsupportedModelError(
            f"{type(model).__name__} is in training mode (modules {training[:5]}); call model.eval() before "
            "exporting: dropout and batch statistics differ in training mode"
        )
    specs = _input_specs(model, input_shape, example_inputs)
    program = _export(model, specs)
    return _to_ir(model, program, [shape for shape, _ in specs], torch.__version__)


def _shapes(input_shape: Any) -> list[tuple[int, ...]]:
    """``input_shape`` as one (batch, ...) tuple per input: a shape of ints is one input's."""
    if isinstance(input_shape, (list, tuple)) and input_shape:
        if all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in input_shape):
            return [tuple(int(d) for d in input_shape)]
        if all(isinstance(s, (list, tuple)) for s in input_shape):
            shapes = [_shapes(s) for s in input_shape]
            if all(len(s) == 1 for s in shapes):
                return [s[0] for s in shapes]
    raise ValueError(
        f"input_shape must be (batch, ...), e.g. (1, 3, 32, 32), or one such shape per input of forward, "
        f"e.g. [(1, 10), (1, 4)]; got {input_shape!r}"
    )


def _input_specs(model: Any, input_shape: Any, example_inputs: Any) -> list[tuple[tuple[int, ...], Any]]:
    """(shape, torch dtype) of each input of ``forward``: the example tensors' where given, else the
    parameters' float dtype (a module whose first layer is an Embedding reads integer ids)."""
    import torch

    if example_inputs is not None:
        examples = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
        if not examples or not all(isinstance(t, torch.Tensor) and t.ndim >= 1 for t in examples):
            raise ValueError("example_inputs must be a tensor (batch, ...) or a tuple of such tensors")
        specs = [((1, *(int(d) for d in t.shape[1:])), t.dtype) for t in examples]
        if input_shape is not None and [s[1:] for s in _shapes(input_shape)] != [s[1:] for s, _ in specs]:
            raise ValueError(f"input_shape {input_shape!r} disagrees with the example inputs' shapes")
        return specs
    if input_shape is None:
        raise ValueError(
            "export_pytorch_model needs input_shape=(batch, ...), e.g. (1, 3, 32, 32) (one per input of a "
            "module with several), or example_inputs= (tensors of the dtypes the module takes)"
        )
    shapes = _shapes(input_shape)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    first = next((m for m in model.modules() if not list(m.children())), None)
    if len(shapes) == 1 and isinstance(first, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        return [(shapes[0], torch.long)]
    return [(shape, dtype) for shape in shapes]


def _program_input_shapes(program: Any, given: Any) -> list[tuple[int, ...]]:
    """(1, ...) for each input of a program already captured (``torch.export.export``, or a ``.pt2`` file
    loaded with ``torch.export.load``): tensors whose batch dimension, one for all, and only it is dynamic."""
    import torch

    user = set(program.graph_signature.user_inputs)
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    values = [n.meta.get("val") for n in inputs]
    if not values or not all(isinstance(v, torch.Tensor) and v.ndim >= 1 for v in values):
        kinds = [type(v).__name__ for v in values]
        raise UnsupportedModelError(f"the exported program's inputs are {kinds}; tensors (batch, ...) are supported")
    one_batch = len({str(v.shape[0]) for v in values}) == 1
    for node, value in zip(inputs, values, strict=True):
        batch, *rest = value.shape
        if not isinstance(batch, torch.SymInt):
            raise UnsupportedModelError(
                f"the exported program has a fixed batch size of {batch} (input {node.name!r}): export it "
                "with dynamic_shapes={0: torch.export.Dim('batch')} for each input, or pass the nn.Module "
                "and input_shape"
            )
        if any(isinstance(d, torch.SymInt) for d in rest) or not one_batch:
            raise UnsupportedModelError(
                f"only the batch dimension may be dynamic, one for every input; input {node.name!r} is "
                f"{tuple(value.shape)}"
            )
    shapes = [(1, *(int(d) for d in v.shape[1:])) for v in values]
    if given is not None and [s[1:] for s in _shapes(given)] != [s[1:] for s in shapes]:
        described = ", ".join(f"(batch, *{s[1:]})" for s in shapes)
        raise ValueError(f"input_shape {given!r} disagrees with the exported program's inputs {described}")
    return shapes


def _export(model: Any, specs: list[tuple[tuple[int, ...], Any]]) -> Any:
    """The module captured with a dynamic batch dimension, one for every input, in core ATen. The example
    batch has two rows (PyTorch specializes a dimension of size 1)."""
    import torch
    from torch.export import Dim, export

    args = tuple(torch.zeros((2, *shape[1:]), dtype=dtype) for shape, dtype in specs)
    batch = Dim("batch", min=1)
    with _torch_export_warnings_silenced():
        try:
            program = export(model, args, dynamic_shapes=tuple({0: batch} for _ in args))
        except Exception as e:  # torch.export's own errors carry the reason
            hint = "" if len(args) == 1 else " (inputs of another dtype than float: pass example_inputs=)"
            raise UnsupportedModelError(f"torch.export could not capture {type(model).__name__}{hint}: {e}") from e
        return program.run_decompositions()


@contextlib.contextmanager
def _torch_export_warnings_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        # torch.export's internals use their own deprecated pytree API (nothing a user can act on)
        warnings.filterwarnings("ignore", "`isinstance\\(treespec, LeafSpec\\)` is deprecated", FutureWarning)
        # nn.LSTM and nn.GRU refresh their _flat_weights list during export (the weights are parameters)
        warnings.filterwarnings("ignore", "The tensor attributes .*_flat_weights.* were assigned during export")
        yield


def _op_name(target: Any) -> str:
    """ATen's name of a call target: "aten.add.Tensor"; the default overload as "aten.relu"."""
    packet, overload = target._schema.name.split("::")[1], target._schema.overload_name
    return f"aten.{packet}" + (f".{overload}" if overload and overload != "default" else "")


class _Batch:
    """Affine expressions of the batch symbol, from the SymInts of the exported graph."""

    def __init__(self) -> None:
        self.symbol: Any = None

    def affine(self, value: Any) -> int | dict[str, list[int]]:
        import sympy

        expr = sympy.sympify(value.node.expr) if hasattr(value, "node") else sympy.Integer(int(value))
        symbols = expr.free_symbols
        if not symbols:
            return int(expr)
        if len(symbols) > 1 or (self.symbol is not None and symbols != {self.symbol}):
            raise UnsupportedModelError(f"a size depends on more than the batch dimension: {expr}")
        (self.symbol,) = symbols
        b = int(expr.subs(self.symbol, 0))
        a = int(expr.subs(self.symbol, 1)) - b
        if int(expr.subs(self.symbol, 7)) != 7 * a + b:
            raise UnsupportedModelError(f"a size is not linear in the batch dimension: {expr}")
        return {"batch": [a, b]} if a else b


def _check_rows_are_independent(model: Any, program: Any, input_shapes: list[tuple[int, ...]]) -> None:
    """Refuse a module that mixes the rows of a batch (batch_rows.py), run as captured."""
    import torch
    from torch.utils import _pytree

    user = program.graph_signature.user_inputs
    dtypes = {n.name: n.meta["val"].dtype for n in program.graph.nodes if n.op == "placeholder" and n.name in user}
    generator = torch.Generator().manual_seed(0)

    def rows(shape: tuple[int, ...], dtype: Any) -> Any:
        if dtype.is_floating_point:
            return torch.randn((5, *shape[1:]), generator=generator, dtype=dtype)
        return torch.randint(0, 2, (5, *shape[1:]), generator=generator).to(dtype)  # (ids 0 and 1, masks)

    five = [rows(s, dtypes[name]) for name, s in zip(user, input_shapes, strict=True)]
    module = program.module()

    def outputs_for(n: int) -> list[Any]:
        with torch.no_grad(), _torch_export_warnings_silenced():
            leaves = _pytree.tree_leaves(module(*(t[:n] for t in five)))
        return [t.numpy() for t in leaves if isinstance(t, torch.Tensor)]

    refuse_rows_that_mix(
        type(model).__name__,
        outputs_for,
        "A sequence-first module (nn.MultiheadAttention, an RNN or Transformer with batch_first=False) mixes "
        "along it, as does a softmax over dimension 0; export a module that takes the batch first",
    )


def _to_ir(model: Any, program: Any, input_shapes: list[tuple[int, ...]], version: str) -> ModelIR:
    lowering = _Lowering(program, input_shapes)
    outputs = lowering.run()
    if lowering.missing:
        raise UnsupportedModelError(
            f"{type(model).__name__}: no jnp implementation for ATen ops {sorted(set(lowering.missing))}"
        )
    _check_rows_are_independent(model, program, input_shapes)
    b = lowering.b
    read = {i for n in b.nodes for i in n.inputs} | set(outputs)
    for name in [t for t in b.tensors if t not in read]:
        del b.tensors[name]  # a parameter only its folded layout used, or a buffer nothing reads
    outputs = distinct_outputs(b, outputs, [vi.name for vi in b.inputs])
    roles = _output_names(program, len(outputs))
    converted = Converted("network", dict(zip(roles, outputs, strict=True)), roles)
    metadata = {
        "framework": "pytorch",
        "framework_version": version,
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "input_shape": [None, *input_shapes[0][1:]],
        "input_names": [vi.name for vi in b.inputs],
        **({"input_shapes": [[None, *s[1:]] for s in input_shapes]} if len(input_shapes) > 1 else {}),
        "largest_activation_bytes_per_row": _largest_activation(program),
    }
    return model_ir(b, converted, metadata)


def _output_names(program: Any, count: int) -> list[str]:
    """A module's outputs by the keys of the dict it returns, else "output" or output_0, output_1 ..."""
    spec = program.call_spec.out_spec
    if spec is not None and spec.type is dict and spec.num_leaves == count:
        keys = spec.context
        children = spec.children() if hasattr(spec, "children") else spec.children_specs  # (older torch)
        flat = all(child.num_leaves == 1 for child in children)
        if flat and all(isinstance(k, str) and k and k != "invalid" for k in keys) and len(set(keys)) == count:
            return list(keys)
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _by_batch(node: Any) -> bool:
    """Whether a tensor of the exported graph is laid out by the batch's rows (its first dimension the
    batch symbol, or an expression of it): ids that come from the input, not a position table's arange."""
    import torch

    value = node.meta.get("val") if hasattr(node, "meta") else None
    return isinstance(value, torch.Tensor) and value.ndim > 0 and isinstance(value.shape[0], torch.SymInt)


class _Lowering:
    """The exported program's nodes, in order, as graph nodes; ``missing`` collects what has no op."""

    def __init__(self, program: Any, input_shapes: list[tuple[int, ...]]) -> None:
        signature = program.graph_signature
        self.program = program
        self.shape_of = dict(zip(signature.user_inputs, input_shapes, strict=True))
        self.state = {**program.state_dict, **program.constants}
        self.param_of = {
            **signature.inputs_to_parameters,
            **signature.inputs_to_buffers,
            **signature.inputs_to_lifted_tensor_constants,
        }
        self.b = GraphBuilder()
        self.names: dict[str, Any] = {}  # fx node name -> tensor name, or a SymInt's affine form
        self.split_of: dict[str, tuple[str, str, Any]] = {}
        # node -> (op, its inputs, its attributes) of an op with several outputs whose first the graph holds
        self.first_of: dict[str, tuple[str, list[str], dict[str, Any]]] = {}
        self.broadcast_of: dict[str, str] = {}  # tensor -> the 2-D parameter it repeats over a leading axis
        self.batch = _Batch()
        self.missing: list[str] = []
        self._absent: str | None = None

    def run(self) -> list[str]:
        """Every node lowered; the user outputs' tensors."""
        import torch

        outputs: list[Any] = []
        for node in self.program.graph.nodes:
            if node.op == "placeholder":
                self.placeholder(node)
            elif node.op == "call_function":
                self.call(node)
            elif node.op == "output":
                outputs = [a for a in node.args[0] if isinstance(a, torch.fx.Node)]
        user = self.program.graph_signature.user_outputs
        return [self.names[o.name] for o in outputs if o.name in user and o.name in self.names]

    def placeholder(self, node: Any) -> None:
        if node.name in self.param_of:
            self.names[node.name] = self.tensor_const(self.state[self.param_of[node.name]], node.name)
            return
        x = self.b.input(node.name, (None, *self.shape_of[node.name][1:]))
        dtype = node.meta["val"].dtype
        # inputs arrive in the runtime's float precision: token ids and masks become the integers and
        # booleans the module's ops take
        self.names[node.name] = x if dtype.is_floating_point else self.b.op("aten._to_copy", x, dtype=self.attr(dtype))

    def call(self, node: Any) -> None:
        import torch

        if isinstance(node.meta.get("val"), torch.SymInt):
            self.names[node.name] = self.batch.affine(node.meta["val"])
        elif node.target is operator.getitem:
            self.getitem(node)
        elif not hasattr(node.target, "_schema"):
            self.missing.append(str(node.target))
        else:
            self.aten(node)

    def getitem(self, node: Any) -> None:
        source, index = node.args
        if source.name in self.first_of:
            op, inputs, attrs = self.first_of[source.name]
            if index == 0:
                self.names[node.name] = self.names[source.name]
            elif has_op(f"{op}:{index}"):  # another output, computed by an op of its own
                self.names[node.name] = self.b.op(f"{op}:{index}", *inputs, **attrs)
            else:
                self.missing.append(f"{op} (output {index})")
        elif source.name in self.split_of:
            self.names[node.name] = _split_piece(self.b, *self.split_of[source.name], index)
        elif source.name in self.names:
            self.missing.append(f"getitem of {source.target}")
        # (else its source is an op already reported missing)

    def aten(self, node: Any) -> None:
        b, names = self.b, self.names
        name = _op_name(node.target)
        if name in _CHECKS:
            return
        if name == "aten._assert_async.msg":  # a check of values (F.one_hot's: every index in range)
            if node.args[0].name in names:  # (torch raises for the whole batch; so does the runtime)
                flag = b.op("FailedCheck", names[node.args[0].name], b.inputs[0].name)
                b.refuse_rows(flag, f"PyTorch's check of the input failed: {node.args[1]}")
            return
        packet = name.split(".")[1]
        if packet in _SPLITS:
            if node.args[0].name in names:  # (else its source is an op already reported missing)
                self.split_of[node.name] = (names[node.args[0].name], packet, _split_arguments(node, self.attr))
            return
        if not has_op(name):
            self.missing.append(name)
            return
        if any(a.name not in names for a in node.all_input_nodes):
            return  # fed by an op already reported missing
        inputs, attrs = self.arguments(node)
        if packet == "rrelu_with_noise_functional" and attrs.get("training"):
            raise UnsupportedModelError("F.rrelu(training=True) draws a random slope on every call: not exported")
        if packet == "grid_sampler_2d" and attrs.get("interpolation_mode") not in (0, 1):
            raise UnsupportedModelError("F.grid_sample with mode='bicubic' is not supported (bilinear and nearest are)")
        if name in _LAYOUT_OPS and len(inputs) == 1 and inputs[0] in b.tensors and not has_markers(attrs):
            # a parameter's transpose or reshape, done once here instead of on every call, and stored once
            # however many nodes ask for it (an RNN's captured steps each transpose its weights again)
            key = (name, inputs[0], repr(sorted(attrs.items())))
            names[node.name] = b.shared_const(key, node.name, _LAYOUT_OPS[name](b.tensors[inputs[0]], **attrs))
            return
        if name == "aten.bmm" and inputs[1] in self.broadcast_of:
            # (batch, n, k) @ a parameter (k, m) repeated over the batch by expand: a broadcasting
            # product instead, so that the repeated copies are never made
            names[node.name] = b.op("aten.matmul", inputs[0], self.broadcast_of[inputs[1]])
            return
        if name == "aten.convolution" and not attrs.get("transposed") and inputs[1] in b.tensors:
            # the kernel stored spatial axes first, as XLA's CPU convolutions read it: in PyTorch's layout
            # every call began by transposing it (a ResNet-style CNN at one image: 1.44 ms instead of 1.67)
            kernel = inputs[1]  # (a kernel two convolutions share is stored once)
            moved = np.moveaxis(b.tensors[kernel], (0, 1), (-1, -2))
            inputs[1] = b.shared_const(("spatial_first", kernel), f"{kernel}_spatial_first", moved)
            attrs["kernel_spatial_first"] = True
        names[node.name] = b.op(name, *inputs, **attrs)
        if name in ("aten.embedding", "aten._embedding_bag") and inputs[0] in b.tensors and _by_batch(node.args[1]):
            size = int(b.tensors[inputs[0]].shape[0])  # (torch raises IndexError for an id outside the table)
            rows = [] if name == "aten.embedding" else [b.inputs[0].name]  # (a bag's ids come flattened)
            flag = b.op("IndexOutOfRange", inputs[1], *rows, size=size)
            b.refuse_rows(flag, f"an embedding id outside 0..{size - 1} (PyTorch raises IndexError)")
        repeated = _repeated_parameter(b, self.broadcast_of, name, inputs, attrs, node)
        if repeated is not None:
            self.broadcast_of[names[node.name]] = repeated
        if packet in _FIRST_OF_SEVERAL:
            self.first_of[node.name] = (name, inputs, attrs)

    def arguments(self, node: Any) -> tuple[list[str], dict[str, Any]]:
        """The node's tensor arguments as inputs, in ATen's order, and its others as attributes."""
        inputs, attrs = [], {}
        given = {a.name: v for a, v in zip(node.target._schema.arguments, node.args, strict=False)}
        given.update(node.kwargs)
        for argument in node.target._schema.arguments:
            if argument.name not in given or argument.name in _IGNORED_ARGUMENTS:
                continue
            value, kind = given[argument.name], str(argument.type)
            if kind.startswith(("List[Tensor]", "List[Optional[Tensor]]")) or kind in ("Tensor[]", "Tensor?[]"):
                inputs.extend(self.tensor_input(v) for v in value)
            elif "Tensor" in kind:
                inputs.append(self.tensor_input(value))
            else:
                attrs[argument.name] = self.attr(value)
        return inputs, attrs

    def tensor_const(self, value: Any, hint: str) -> str:
        import torch

        if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
            value = value.float()  # (numpy has no bfloat16; float32 holds every bfloat16 exactly)
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return self.b.const(hint, array)

    def tensor_input(self, value: Any) -> str:
        import torch

        if isinstance(value, torch.fx.Node):
            return str(self.names[value.name])
        if value is None:
            if self._absent is None:
                self._absent = self.b.const("absent", np.zeros((0,), np.float32))
            return self._absent
        return self.tensor_const(value, "scalar")

    def attr(self, value: Any) -> Any:
        import torch

        if isinstance(value, torch.fx.Node):
            if value.name not in self.names or isinstance(self.names[value.name], str):
                raise UnsupportedModelError(f"argument {value.name} is a tensor where a number is expected")
            return self.names[value.name]
        if isinstance(value, (list, tuple)):
            return [self.attr(v) for v in value]
        if isinstance(value, torch.dtype):
            return str(value).removeprefix("torch.")
        if isinstance(value, torch.SymInt):
            return self.batch.affine(value)
        if isinstance(value, float) and not math.isfinite(value):
            return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise UnsupportedModelError(f"an argument of type {type(value).__name__} is not supported")


def _largest_activation(program: Any) -> int:
    """Bytes a row of the largest intermediate takes (its batch-dependent sizes taken at batch 1)."""
    import torch

    largest = 0
    for node in program.graph.nodes:
        val = node.meta.get("val")
        if node.op != "call_function" or not isinstance(val, torch.Tensor):
            continue
        dims = [d for d in val.shape if isinstance(d, torch.SymInt)]
        if not dims:
            continue  # not per row
        size = 1
        for d in val.shape:
            size *= (
                int(d.node.expr.subs({s: 1 for s in d.node.expr.free_symbols}))
                if isinstance(d, torch.SymInt)
                else int(d)
            )
        largest = max(largest, size * val.element_size())
    return largest


def _repeated_parameter(
    b: GraphBuilder, broadcast_of: dict[str, str], name: str, inputs: list[str], attrs: dict[str, Any], node: Any
) -> str | None:
    """The 2-D parameter this node's output repeats over a leading axis: an expand of it to (n, *shape),
    or a view that keeps the shape of such an expand (how nn.MultiheadAttention's projections reach bmm)."""
    if name == "aten.expand" and inputs[0] in b.tensors and b.tensors[inputs[0]].ndim == 2:
        size = attrs["size"]
        return inputs[0] if len(size) == 3 and list(size[1:]) == list(b.tensors[inputs[0]].shape) else None
    if name in ("aten.view", "aten._unsafe_view") and inputs[0] in broadcast_of:
        same = tuple(node.meta["val"].shape) == tuple(node.args[0].meta["val"].shape)
        return broadcast_of[inputs[0]] if same else None
    return None


def _split_arguments(node: Any, attr: Any) -> dict[str, Any]:
    arguments = {a.name: v for a, v in zip(node.target._schema.arguments, node.args, strict=False)}
    arguments.update(node.kwargs)
    return {k: attr(v) for k, v in arguments.items() if k != "self"}


def _split_piece(b: GraphBuilder, x: str, packet: str, arguments: dict[str, Any], index: int) -> str:
    """Piece ``index`` of split_with_sizes / split / unbind, as a slice or a select."""
    dim = arguments.get("dim", 0)
    if packet == "unbind":
        return b.op("aten.select.int", x, dim=dim, index=index)
    sizes = arguments.get("split_sizes") or arguments.get("split_size")
    if isinstance(sizes, int):
        start, end = index * sizes, (index + 1) * sizes
    else:
        start, end = sum(sizes[:index]), sum(sizes[: index + 1])
    return b.op("aten.slice.Tensor", x, dim=dim, start=start, end=end, step=1)
