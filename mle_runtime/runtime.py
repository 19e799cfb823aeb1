"""MLERuntime: load an .mle file, lower its graph to a jnp function, compile per batch bucket
(through the executable cache), run, and decode outputs."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from mle_runtime import buckets, cast_cache, narrowing, signing
from mle_runtime._version import __version__
from mle_runtime.cache import (
    ExecutableCache,
    cache_dirs,
    cache_folders,
    cache_key,
    code_fingerprint,
    deserialize_compiled,
    serialize_compiled,
    unpickled_model_path,
)
from mle_runtime.catboost_categories import CatBoostCategories, decode_catboost_categories
from mle_runtime.devices import inline_cpu_device, resolve_device, resolve_devices
from mle_runtime.errors import FormatError, InputError
from mle_runtime.graph import Graph, structure_hash
from mle_runtime.inputs import (
    Lookup,
    as_input_list,
    check_finite,
    coerce_input,
    converted,
    is_sparse,
    one_column,
    sparse_block_rows,
)
from mle_runtime.lowering import build_function, compile_program, round_down_tensors
from mle_runtime.metadata import (
    decode_classes,
    decode_output_classes,
    decode_split_input_columns,
    decode_string_columns,
    model_info,
)
from mle_runtime.reader import MleFile, read_mle
from mle_runtime.text import TextColumn, decode_text_features
from mle_runtime.writer import canonical_json
from mle_runtime.x64 import x64

PRECISIONS: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
log = logging.getLogger("mle_runtime.runtime")

# A text model analyses and runs a batch in blocks of this many documents: the analysis holds every
# term of a block's documents in Python lists.
TEXT_BLOCK_ROWS = 8192

# A batch of one chunk runs inline (devices.inline_cpu_device) while its rows times the model's parameter
# bytes stay within this: a crude measure of the work, decided before anything compiles. Light calls gain
# the most (measured, 2 cores: Ridge at 1,000 rows 1.6x, one row through 500 LightGBM trees 1.5x); heavy
# ones lose, the dispatched program running independent steps side by side (500 LightGBM trees at 1,000
# rows: 0.72-0.92x inline; an MLP's or XGBoost's at 1,000 rows: even).
INLINE_WORK_BYTES = 4 << 20
# ... and so does a batch of up to this many rows, whatever its work: at 64 rows the inline client was the
# faster in most runs and never more than 10% slower (benchmarks/bench_dispatch.py, JAX's time over the
# inline client's in two runs: an MLP (256, 256) 1.31x and 1.20x, 500 LightGBM trees 1.26x and 0.97x,
# 500 XGBoost trees of depth 8 0.90x and 1.02x; a 784-512-512 torch MLP 1.2x), at 128 rows no longer
# (LightGBM 0.90x).
INLINE_ROWS = 64

# Outputs an executable computes only for calls that ask for them: a Gaussian process's predictive
# standard deviation costs a (rows, training rows) x (training rows, training rows) product, far more than
# its mean, which every other call would pay for; kneighbors' outputs a search that a KNeighbors model's
# predict does not share (NearestNeighbors, whose only outputs they are, computes them on every call).
ON_DEMAND_OUTPUTS = frozenset({"std", "neighbor_distances", "neighbor_indices"})


def precision_scope(precision: str) -> contextlib.AbstractContextManager[None]:
    """float64 needs JAX's x64 mode; it is switched on only around this runtime's own JAX calls."""
    return x64() if precision == "float64" else contextlib.nullcontext()


def place(host: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """``host`` on the sharding's devices. On CPU an aligned read-only array is shared, not copied (the
    mmap'd weights). The same as ``jax.device_put`` at a fraction of its cost per array, which is paid for
    every parameter (JAX 0.10: ~29 us; ``make_array_from_callback`` ~12 us, and in a load ~40, where
    its checks meet cold caches; JAX's internal ``batched_device_put``, which both end in, ~5 us alone and
    ~35 us in a load). That internal is used for one device and a dtype JAX keeps
    as it is; where it is missing or refuses, the public call."""
    if _internal_place and isinstance(sharding, jax.sharding.SingleDeviceSharding):
        core, dtypes, batched_device_put = _internal_place
        try:
            if dtypes.canonicalize_dtype(host.dtype) == host.dtype:
                aval = core.ShapedArray(host.shape, host.dtype)
                return batched_device_put(aval, sharding, [host], list(sharding.device_set))
        except (AttributeError, TypeError) as e:  # (another JAX: the public call from now on)
            log.info("placing parameters through make_array_from_callback (%s)", e)
            _internal_place.clear()
    return jax.make_array_from_callback(host.shape, sharding, lambda _index: host)


def _placed(host: dict[str, np.ndarray], sharding: jax.sharding.Sharding, precision: str) -> dict[str, jax.Array]:
    with precision_scope(precision):
        return {n: place(a, sharding) for n, a in host.items()}


def _jax_internal_place() -> list[Any]:
    try:
        from jax._src import core, dtypes
        from jax._src.interpreters.pxla import batched_device_put
    except ImportError:
        return []
    return [core, dtypes, batched_device_put]


_internal_place = _jax_internal_place()


class MLERuntime:
    """Loads an .mle model and runs it with XLA on CPU or CUDA."""

    def __init__(
        self,
        device: str = "cpu",
        precision: str = "float32",
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ):
        self.device = device
        self.precision = precision
        self.cache = cache
        self.cache_dir = cache_dir
        self._file: MleFile | None = None
        self.stats = {"compiles": 0, "cache_hits": 0}

    # -- loading ---------------------------------------------------------------------------------
    def load_model(self, path: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
        """Load an .mle file: validate it, build the function, put its parameters on the device (on a CPU
        device when a run first needs them: there placing only wraps the mapped memory).

        Keyword options: ``device``, ``precision`` ("float32" or "float64"), ``cache`` (bool), ``cache_dir``,
        ``verify_checksums`` (default True: every tensor's CRC-32, once per version of a file with over 192 KiB
        of tensor data; "always": on every load; False: never), ``check_inputs`` (default True: refuse NaN and
        infinities where the source framework refuses them), ``verify_signature`` and ``public_key`` (the file's
        Ed25519 signature is checked with ``public_key`` before anything in it is used; a key given without the
        flag verifies too; any failure is a ``SignatureError``), ``decryption_key`` (32 bytes, for a file
        exported with ``encryption_key``; a missing or wrong key is a ``DecryptionError``).
        Compilation happens on the first ``run`` for each batch bucket. Returns ``get_model_info()``.
        """
        self._load(path, **kwargs)
        return self.get_model_info()

    def _load(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        known = {
            "device",
            "precision",
            "cache",
            "cache_dir",
            "verify_checksums",
            "check_inputs",
            "verify_signature",
            "public_key",
            "decryption_key",
            "devices",
        }
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"load_model() got unexpected options {unknown}; known: {sorted(known)}")
        # Settings take effect only once the new model has loaded; a failed load leaves the old one usable.
        device, precision = kwargs.get("device", self.device), kwargs.get("precision", self.precision)
        cache, cache_dir = kwargs.get("cache", self.cache), kwargs.get("cache_dir", self.cache_dir)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        public_key = kwargs.get("public_key")
        if kwargs.get("verify_signature") and public_key is None:
            raise ValueError("verify_signature=True needs public_key= (the signer's Ed25519 public key)")
        if public_key is not None:
            public_key = signing.public_key(public_key)  # parsed once: the reader and the report share it
        mf = read_mle(
            path,
            verify_checksums=kwargs.get("verify_checksums", True),
            public_key=public_key,
            decryption_key=kwargs.get("decryption_key"),
        )
        graph = Graph.from_json(mf.graph, set(mf.tensors))
        unknown_outputs = set(mf.metadata.get("run_outputs") or ()) - set(graph.outputs)
        if unknown_outputs:
            raise FormatError(f"metadata: run_outputs names {sorted(unknown_outputs)}, which the graph does not output")
        fn = build_function(graph)
        jax_device = resolve_device(device)
        spread = resolve_devices(kwargs["devices"], jax_device.platform) if kwargs.get("devices") is not None else []
        if spread:
            jax_device = spread[0]
        dtype = PRECISIONS[precision]
        names = graph.param_names(set(mf.tensors))
        # No cast copy of decrypted weights goes to disk, and a verified load uses only the bytes it verified.
        keep_cast = cache and mf.nonce is None and public_key is None
        folders = functools.partial(cache_folders, mf.path, cache_dir) if keep_cast else list
        host, parameters_how = cast_cache.parameters(mf, names, dtype, round_down_tensors(graph), folders)
        mesh = jax.sharding.Mesh(np.array(spread), ("batch",)) if len(spread) > 1 else None
        if mesh is None:
            placement: jax.sharding.Sharding = jax.sharding.SingleDeviceSharding(jax_device)
        else:  # replicated on every device of a data-parallel mesh
            placement = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        host_params = dict(zip(names, host, strict=True))
        # On one CPU device, placing a parameter only wraps its mapped memory, yet JAX's bookkeeping for it
        # costs ~35 us per array in a load (its code is cold by then: a quarter of a 12.8 MB PCA's load). So it
        # waits for first use (``_params``), and a batch run on the inline client never needs it. On other
        # devices placing is the transfer of the weights, and its failure (out of memory) belongs to the load.
        placed = None if jax_device.platform == "cpu" and mesh is None else _placed(host_params, placement, precision)
        classes, output_classes = decode_classes(mf.metadata), decode_output_classes(mf.metadata)
        width = graph.inputs[0].shape[-1] if len(graph.inputs) == 1 and graph.inputs[0].shape else None
        self._split_input_columns = decode_split_input_columns(mf.metadata, width)
        # the host-side steps: string vocabularies, and text analysers and CatBoost's categorical features,
        # whose columns widen the graph input
        strings: dict[int, Lookup] = {
            **decode_string_columns(mf.metadata),
            **decode_text_features(mf.metadata),
            **decode_catboost_categories(mf.metadata, mf.tensors),
        }
        self.device, self.precision, self.cache, self.cache_dir = device, precision, cache, cache_dir
        # what a pickled runtime loads again with (not a decryption key: such a runtime is not pickled)
        self._load_options: dict[str, Any] = {
            k: kwargs[k] for k in ("verify_checksums", "check_inputs", "verify_signature") if k in kwargs
        }
        if public_key is not None:
            self._load_options["public_key"] = signing.raw_public_key(public_key)
        if mesh is not None:
            self._load_options["devices"] = len(spread)
        self._jax_device, self._classes, self._output_classes = jax_device, classes, output_classes
        self._file, self._graph, self._fn = mf, graph, fn
        self._input_names = [s.name for s in graph.inputs]
        self._host_params, self._placement, self._placed = host_params, placement, placed
        self._parameters_how = parameters_how
        self._narrowing_plan: dict[int, narrowing.SplitNarrowing] | None = None  # planned on first float64 input
        self._mesh = mesh
        # Batches of one chunk run on the runtime's synchronous CPU client (devices.inline_cpu_device), with
        # the parameters placed there too on the first such batch; as_jax() and chunked batches keep JAX's.
        self._inline_device = inline_cpu_device() if jax_device.platform == "cpu" and mesh is None else None
        self._inline_params: dict[str, jax.Array] | None = None
        self._staging = buckets.Staging()
        self._inline_rows = max(INLINE_ROWS, INLINE_WORK_BYTES // max(1, sum(a.nbytes for a in host)))
        self._signer = signing.fingerprint(public_key) if public_key is not None else None
        self._scope = functools.partial(precision_scope, precision)
        self._feature_names = mf.metadata.get("feature_names")
        self._by_name = mf.metadata.get("columns_by_name") is True
        self._strings = strings
        self._text_block_rows = TEXT_BLOCK_ROWS if any(isinstance(s, TextColumn) for s in strings.values()) else None
        # the graph input's columns the caller gave (those after them, a host step's, are finite by making)
        widened = [s.input_width for s in strings.values() if isinstance(s, (TextColumn, CatBoostCategories))]
        self._given_width = widened[0] if widened else None
        self._one_dimensional = bool(mf.metadata.get("one_dimensional_input"))
        self._multilabel = mf.metadata.get("multilabel") is True
        # Present for frameworks that refuse non-finite inputs (scikit-learn); absent means no check.
        # check_inputs=False skips it: ~10 us per 1,000 x 50 floats, but NaN then flows through silently.
        self._allow_nan: bool | list[int] | None = (
            mf.metadata.get("allow_nan") if kwargs.get("check_inputs", True) else None
        )
        self._allow_inf: bool | list[int] = mf.metadata.get("allow_inf", False)
        self._max_bucket = buckets.CPU_MAX_BUCKET if self._jax_device.platform == "cpu" else buckets.GPU_MAX_BUCKET
        if self._jax_device.platform == "cpu":
            self._max_bucket = buckets.cpu_chunk(self._max_bucket, mf.metadata.get("largest_activation_bytes_per_row"))
        self._executables: dict[tuple[Any, ...], Any] = {}  # (each input's (shape, dtype), ..., outputs computed)
        self._functions: dict[tuple[str, ...], Any] = {graph.outputs: fn}
        self._usual_outputs = tuple(name for name in graph.outputs if name not in ON_DEMAND_OUTPUTS)
        # The cache (folders, key file, structure hash) is set up on the first compile or lookup:
        # loading stays cheap for runs that never need it.
        self._cache_state: tuple[ExecutableCache, str] | None = None
        self.stats = {"compiles": 0, "cache_hits": 0}

    # -- pickling --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """A pickled runtime carries its model file's bytes and its load options, as a pickled XGBoost
        Booster carries its model: it loads again in another process or on another machine (its compiled
        programs stay behind; the compile cache there may hold them). One with no model carries its
        settings alone; one of an encrypted model is not pickled (its key would travel with it)."""
        settings = {
            "device": self.device,
            "precision": self.precision,
            "cache": self.cache,
            "cache_dir": self.cache_dir,
        }
        if self._file is None:
            return {"settings": settings}
        if self._file.nonce is not None:
            raise TypeError(
                "a runtime of an encrypted model is not pickled (its decryption key would travel with it); "
                "load the file with its key where it is needed"
            )
        return {"settings": settings, "options": dict(self._load_options), "model": self._file_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["settings"])  # type: ignore[misc]
        if "model" in state:
            self._load(unpickled_model_path(state["model"], self.cache_dir), **state["options"])

    def _file_bytes(self) -> bytes:
        """The loaded model file's bytes, read again: refused if the file is no longer the one loaded."""
        mf = self._require()
        with open(mf.path, "rb") as f:
            now = os.fstat(f.fileno())
            same = (now.st_size, now.st_mtime_ns, now.st_ino) == (mf.stat.st_size, mf.stat.st_mtime_ns, mf.stat.st_ino)
            data = f.read() if same else b""
        if not same or len(data) != mf.file_size:
            raise RuntimeError(f"{mf.path} changed since this runtime loaded it; load it again before pickling")
        return data

    @property
    def _narrowing(self) -> dict[int, narrowing.SplitNarrowing]:
        """Model input position -> how float64 values of it are narrowed exactly for trees that split in
        float64 (see narrowing.py). Planned when first needed: it sorts every split threshold (6 ms of a
        9 ms load for 500 LightGBM trees), which float32 inputs never use."""
        if self._narrowing_plan is None:
            mf = self._require()
            float32 = self.precision == "float32"
            self._narrowing_plan = narrowing.plan(self._graph, mf.tensors, self._split_input_columns) if float32 else {}
        return self._narrowing_plan

    @property
    def _params(self) -> dict[str, jax.Array]:
        """The parameters on the runtime's device (JAX's client), placed on first use on one CPU device."""
        if self._placed is None:
            self._placed = _placed(self._host_params, self._placement, self.precision)
        return self._placed

    def _require(self) -> MleFile:
        if self._file is None:
            raise RuntimeError("no model loaded; call load_model(path) first")
        return self._file

    # -- compiling -------------------------------------------------------------------------------
    def _cache_and_structure(self) -> tuple[ExecutableCache, str]:
        if self._cache_state is None:
            mf = self._require()
            dirs = cache_dirs(mf.path, self.cache_dir) if self.cache else []
            with self._scope():  # (the dtypes the parameters have once placed: JAX's under this precision)
                signature = [
                    (n, str(jax.dtypes.canonicalize_dtype(a.dtype)), a.shape) for n, a in self._host_params.items()
                ]
            structure = structure_hash(canonical_json(mf.graph), signature)
            self._cache_state = (ExecutableCache(dirs), structure)
        return self._cache_state

    def _target(self, bucket: int) -> tuple[Any, dict[str, jax.Array]]:
        """The device a chunk of ``bucket`` rows runs on, and the parameters placed there: a light batch of
        one chunk on the runtime's synchronous CPU client where there is one; chunked and heavy batches on
        JAX's (see INLINE_WORK_BYTES and INLINE_ROWS)."""
        if self._inline_device is None or bucket >= self._max_bucket or bucket > self._inline_rows:
            return self._jax_device, self._params
        if self._inline_params is None:
            sharding = jax.sharding.SingleDeviceSharding(self._inline_device)
            self._inline_params = _placed(self._host_params, sharding, self.precision)
        return self._inline_device, self._inline_params

    def _caller_columns(self, a: np.ndarray) -> np.ndarray:
        """``a`` less the columns a host step appended to it (finite by making): what the finite check reads."""
        return a if self._given_width is None or a.ndim < 2 else a[..., : self._given_width]

    def _computed(self, wanted: Sequence[str]) -> tuple[str, ...]:
        """The outputs a call that wants ``wanted`` computes: all but those computed on demand
        (ON_DEMAND_OUTPUTS), unless it wants one of them; then all."""
        if any(name in ON_DEMAND_OUTPUTS for name in wanted):
            return self._graph.outputs
        return self._usual_outputs

    def _function(self, computed: tuple[str, ...]) -> Any:
        """The graph's function cut down to the ``computed`` outputs (XLA drops what they do not need)."""
        fn = self._functions.get(computed)
        if fn is None:
            fn = self._functions[computed] = build_function(Graph(self._graph.inputs, computed, self._graph.nodes))
        return fn

    def _executable(
        self, arrays: list[np.ndarray], device: Any, params: dict[str, jax.Array], computed: tuple[str, ...]
    ) -> Any:
        """The compiled program of the ``computed`` outputs for inputs shaped as ``arrays`` (a padded
        chunk), on ``device`` with ``params`` (as ``_target`` chose them for its rows)."""
        signature = tuple((a.shape, a.dtype.str) for a in arrays)
        compiled = self._executables.get((*signature, computed))
        if compiled is not None:
            return compiled
        if self._mesh is not None:
            return self._compile_spread(signature, arrays, computed)
        sharding = jax.sharding.SingleDeviceSharding(device)
        avals = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding) for a in arrays)
        cache, structure = self._cache_and_structure()
        key = cache_key(
            [
                ("structure", structure),
                ("inputs", ";".join(f"{s}:{d}" for s, d in signature)),
                ("outputs", ",".join(computed)),
                ("precision", self.precision),
                ("jax", jax.__version__),
                ("jaxlib", _jaxlib_version()),
                ("backend", self._jax_device.platform),
                ("device_kind", self._jax_device.device_kind),
                ("mle_runtime", __version__),
                ("code", code_fingerprint()),
            ]
        )
        payload = cache.load(key)
        if payload is not None:
            in_tree = jax.tree_util.tree_structure(((params, avals), {}))
            out_tree = jax.tree_util.tree_structure(tuple(range(len(computed))))
            compiled = deserialize_compiled(payload, in_tree, out_tree, device)
        if compiled is not None:
            self.stats["cache_hits"] += 1
        else:
            compiled = compile_program(self._function(computed), (params, avals), device.platform)
            self.stats["compiles"] += 1
            payload = serialize_compiled(compiled)
            if payload is not None:
                cache.store(key, payload)
        self._executables[(*signature, computed)] = compiled
        return compiled

    def _compile_spread(self, signature: tuple[Any, ...], arrays: list[np.ndarray], computed: tuple[str, ...]) -> Any:
        """Rows split across the mesh's devices, parameters replicated; compiled per process (the
        executable cache holds single-device executables only)."""
        assert self._mesh is not None
        rows = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec("batch"))
        avals = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rows) for a in arrays)
        fn = self._function(computed)
        compiled = compile_program(fn, (self._params, avals), self._jax_device.platform, out_shardings=rows)
        self.stats["compiles"] += 1
        self._executables[(*signature, computed)] = compiled
        return compiled

    def _bucket(self, n: int) -> int:
        bucket = buckets.bucket_for(max(n, 1), self._max_bucket)
        if self._mesh is None:
            return bucket
        devices = self._mesh.size  # every device gets the same number of rows
        return -(-bucket // devices) * devices

    # -- running ---------------------------------------------------------------------------------
    def _prepare(self, given: list[Any]) -> list[np.ndarray]:
        """The graph's arrays for ``given`` (``as_input_list``'s list of the caller's inputs)."""
        self._require()
        specs = self._graph.inputs
        if len(given) != len(specs):
            raise InputError(f"model takes {len(specs)} input(s) {[s.name for s in specs]}, got {len(given)}")
        dtype = PRECISIONS[self.precision]
        if self._one_dimensional:
            given = one_column(given)
        arrays = []
        for i, (x, spec) in enumerate(zip(given, specs, strict=True)):
            # float32 inputs are exact as they are
            fix = None if getattr(x, "dtype", None) == np.float32 else self._narrowing.get(i)
            if fix is None:
                arrays.append(coerce_input(x, spec, dtype, self._feature_names, self._strings, self._by_name))
                continue
            wide = coerce_input(x, spec, np.dtype(np.float64), self._feature_names, self._strings, self._by_name)
            narrow = converted(wide, dtype)
            fix.apply(wide, narrow)
            arrays.append(narrow)
        if len({len(a) for a in arrays}) > 1:
            raise InputError(f"inputs disagree on the number of rows: {[len(a) for a in arrays]}")
        return arrays

    def _refuse(self, invalid: np.ndarray) -> None:
        """Raise the message of the first check that some row fails: ``invalid`` is (rows,) for a model
        with one check, (rows, checks) with one message each for several."""
        metadata = self._require().metadata
        messages = metadata.get("invalid_messages") or [metadata.get("invalid_message")]
        flags = invalid.reshape(len(invalid), -1)
        for column, message in enumerate(messages[: flags.shape[1]]):
            rows = np.flatnonzero(flags[:, column])
            if rows.size:
                message = message or "the model cannot answer for these rows"
                raise InputError(f"{message} (rows {rows[:10].tolist()}{' ...' if len(rows) > 10 else ''})")
        raise InputError(f"the model cannot answer for rows {np.flatnonzero(flags.any(axis=1))[:10].tolist()}")

    def _run_graph(self, arrays: list[np.ndarray], wanted: Sequence[str]) -> dict[str, np.ndarray]:
        """The ``wanted`` outputs (and "invalid", always checked) as numpy arrays, labels decoded. The
        executable computes every output but those on demand (``_computed``); the others are neither copied
        to the host nor decoded."""
        n = len(arrays[0])
        outputs = self._computed(wanted)
        keep = [i for i, name in enumerate(outputs) if name in wanted or name == "invalid"]

        def dispatch(start: int, stop: int, bucket: int) -> list[Any]:
            outs = self._dispatch([a[start:stop] for a in arrays], self._bucket(bucket), outputs)
            return [outs[i] for i in keep]

        with self._scope():
            merged = buckets.gather_chunks(n, self._max_bucket, dispatch)
        named = dict(zip([outputs[i] for i in keep], merged, strict=True))
        if "invalid" in named and np.any(named["invalid"]):
            self._refuse(named["invalid"])
        if self._classes is not None and "label" in named:
            named["label"] = _lookup(self._classes, named["label"], "classes")
        elif self._output_classes is not None and "label" in named:
            named["label"] = self._decode_outputs(named["label"])
        return named

    def _decode_outputs(self, index: np.ndarray) -> np.ndarray:
        """(n, outputs) class indices as labels; like scikit-learn, in the first output's dtype."""
        assert self._output_classes is not None
        labels = np.empty(index.shape, dtype=self._output_classes[0].dtype)
        for k, classes in enumerate(self._output_classes):
            labels[:, k] = _lookup(classes, index[:, k], f"output_classes[{k}]")
        return labels

    def _dispatch(self, arrays: list[np.ndarray], bucket: int, computed: tuple[str, ...]) -> list[Any]:
        """Start the executable of the ``computed`` outputs on one chunk padded to ``bucket`` rows; returns
        its outputs, which may still be computing (on a GPU, or where JAX dispatches CPU work
        asynchronously)."""
        chunk = [buckets.padded_rows(a, bucket) for a in arrays]
        # numpy in: the executable moves it to its device (an explicit device_put costs ~50 us more).
        device, params = self._target(bucket)
        staged = self._staging.take(chunk) if device is self._inline_device else []  # (see buckets.Staging)
        outs = self._executable(chunk, device, params, computed)(params, tuple(chunk))
        if staged:  # (the synchronous client is done with them on return: the wait costs nothing)
            jax.block_until_ready(outs)
            self._staging.give_back(staged)
        if self._allow_nan is not None:
            # After the dispatch, so that it overlaps the executable where dispatch is asynchronous: host
            # work between two XLA calls let its thread pool fall asleep, which cost more than the check.
            for a, spec in zip(arrays, self._graph.inputs, strict=True):
                check_finite(self._caller_columns(a), spec.name, self._allow_nan, self._allow_inf)
        return list(outs)

    def run(self, inputs: Any) -> list[np.ndarray]:
        """Run inference; returns the model's outputs (see ``get_model_info()['outputs']``) as numpy arrays."""
        wanted = self._run_outputs()
        named = self._run_named(inputs, wanted)
        return [named[name] for name in wanted]

    def _run_named(self, inputs: Any, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        """The ``wanted`` outputs by name (for callers that need only some of ``run``'s)."""
        block = self._text_block_rows
        given = as_input_list(inputs, self._input_names)
        if len(given) == 1 and is_sparse(given[0]):
            given = [given[0].tocsr()]  # (rows sliced cheaply; a no-op on CSR)
            block = sparse_block_rows(given[0])
        n = _row_count(given[0]) if block is not None and len(given) == 1 else 0
        if block is None or n <= block:
            return self._run_graph(self._prepare(given), wanted)
        parts = [self._run_graph(self._prepare([_rows(given[0], i, i + block)]), wanted) for i in range(0, n, block)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run_outputs(self) -> list[str]:
        return list(self._require().metadata.get("run_outputs") or self._graph.outputs)

    def _output(self, X: Any, name: str, method: str) -> np.ndarray:
        self._require_output(name, method)
        return self._run_named([X], (name,))[name]

    def _require_output(self, name: str, method: str) -> None:
        mf = self._require()
        if name not in self._graph.outputs:
            raise AttributeError(
                f"{mf.metadata.get('estimator', 'this model')} has no {method}() (outputs: {list(self._graph.outputs)})"
            )

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Labels for classifiers, clusters for clusterers, predictions for regressors (scikit-learn's
        ``predict``); a network's first output. ``return_std``: ``(predictions, std)`` with the predictive
        distribution's standard deviation, for the models whose ``predict`` gives it
        (GaussianProcessRegressor, BayesianRidge, ARDRegression, DummyRegressor: a file with a "std" output)."""
        kind = self._require().metadata.get("task")
        if return_std:
            if "std" not in self._graph.outputs:
                raise ValueError(
                    f"{self._require().metadata.get('estimator', 'this model')} gives no predictive standard "
                    f"deviation (return_std=True); outputs: {list(self._graph.outputs)}"
                )
            named = self._run_named([X], ("predictions", "std"))
            return named["predictions"], named["std"]
        if kind == "network":
            return self._output(X, self._run_outputs()[0], "predict")
        return self._output(X, "label" if kind in ("classifier", "clusterer") else "predictions", "predict")

    def predict_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Class probabilities; for a multi-output classifier a list with one (n, n_classes) array per
        output, as scikit-learn returns (``run`` gives them side by side in one array); for a multilabel
        one (ClassifierChain, multilabel one-vs-rest) each output's positive probability, (n, outputs)."""
        proba = self._output(X, "probabilities", "predict_proba")
        if self._output_classes is None or self._multilabel:
            return proba
        edges = np.cumsum([len(c) for c in self._output_classes])[:-1]
        return np.split(proba, edges, axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Log class probabilities as the model's ``predict_log_proba`` computes them: the log of
        ``predict_proba`` for most (a probability of 0 is -inf); from the class scores for naive Bayes,
        QuadraticDiscriminantAnalysis and NearestCentroid, finite where a probability underflows; a 0 read
        as the smallest normal number for LinearDiscriminantAnalysis."""
        self._require()
        if "log_probabilities" in self._graph.outputs:
            return self._output(X, "log_probabilities", "predict_log_proba")
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return [np.log(p) for p in proba] if isinstance(proba, list) else np.log(proba)

    def decision_function(self, X: Any) -> np.ndarray:
        return self._output(X, "decision", "decision_function")

    def transform(self, X: Any) -> Any:
        """The transformed features; for KNeighborsTransformer the neighbour graph, a scipy CSR matrix
        (rows, training rows) as scikit-learn's."""
        graph = self._require().metadata.get("neighbors_graph")
        if graph is None:
            return self._output(X, "transformed", "transform")
        from scipy import sparse

        distances, indices = self._neighbors(X)
        rows, k = indices.shape
        values = distances.ravel() if graph["mode"] == "distance" else np.ones(rows * k)
        pointers = np.arange(0, rows * k + 1, k)
        return sparse.csr_matrix((values, indices.ravel(), pointers), shape=(rows, graph["n_samples_fit"]))

    def score_samples(self, X: Any) -> np.ndarray:
        return self._output(X, "scores", "score_samples")

    def kneighbors(
        self, X: Any, n_neighbors: int | None = None, return_distance: bool = True
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The nearest training rows of each row of ``X`` (scikit-learn's ``kneighbors``, for
        NearestNeighbors and the KNeighbors models): ``(distances, indices)``, nearest first, or the indices
        alone. The file holds the search for the fitted n_neighbors; ``n_neighbors`` may ask for fewer."""
        self._require_output("neighbor_indices", "kneighbors")
        distances, indices = self._neighbors(X)
        fitted = indices.shape[1]
        graph = self._require().metadata.get("neighbors_graph")
        if n_neighbors is None and graph is not None:  # (its graph's search may hold one more)
            n_neighbors = graph["n_neighbors"]
        if n_neighbors is not None:
            if not 0 < n_neighbors <= fitted:
                raise ValueError(f"n_neighbors={n_neighbors}: this file searches for 1 to {fitted} neighbours")
            distances, indices = distances[:, :n_neighbors], indices[:, :n_neighbors]
        return (distances, indices) if return_distance else indices

    def _neighbors(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Every neighbour the file's search finds: distances, and row numbers as scikit-learn's intp."""
        named = self._run_named([X], ("neighbor_distances", "neighbor_indices"))
        return named["neighbor_distances"], named["neighbor_indices"].astype(np.intp)

    def mahalanobis(self, X: Any) -> np.ndarray:
        """Squared Mahalanobis distances to the fitted location (scikit-learn's covariance estimators,
        EllipticEnvelope)."""
        return self._output(X, "mahalanobis", "mahalanobis")

    def encode_inputs(self, inputs: Any) -> list[np.ndarray]:
        """The arrays ``as_jax``'s function takes for ``inputs``: the host-side steps ``run`` applies
        (string categories as codes, documents as their terms and counts), in the compute dtype."""
        self._require()
        return self._prepare(as_input_list(inputs, self._input_names))

    def as_jax(self) -> tuple[Any, dict[str, jax.Array]]:
        """``(fn, params)``: ``fn(params, *inputs)`` is pure and returns a dict of the graph's outputs
        (class indices, not decoded labels, under ``"label"``). It composes with jit, vmap and grad."""
        self._require()
        graph_fn, outputs = self._fn, self._graph.outputs

        def fn(params: dict[str, jax.Array], *inputs: jax.Array) -> dict[str, jax.Array]:
            return dict(zip(outputs, graph_fn(params, inputs), strict=True))

        return fn, dict(self._params)

    def as_flax(self) -> Any:
        """A ``flax.nnx`` module holding this model's tensors (float ones as ``nnx.Param``): call it like
        ``as_jax``'s function, fine-tune it with optax, and ``export(path)`` it back to .mle."""
        mf = self._require()
        try:
            from mle_runtime.flax_module import ConvertedModule
        except ImportError as e:
            raise RuntimeError(f"as_flax() needs flax: pip install 'mle-runtime[flax]' ({e})") from None
        fn, params = self.as_jax()
        return ConvertedModule(fn, params, mf)

    # -- reporting -------------------------------------------------------------------------------
    def get_model_info(self) -> dict[str, Any]:
        mf = self._require()
        info = model_info(mf)
        cache, _ = self._cache_and_structure()
        info.update(
            device=str(self._jax_device),
            devices=[str(d) for d in self._mesh.devices.flat] if self._mesh is not None else [str(self._jax_device)],
            precision=self.precision,
            run_outputs=self._run_outputs(),
            signature={"verified": self._signer is not None, "signer": self._signer},
            cache={
                "enabled": cache.enabled,
                "dirs": [str(d) for d in cache.dirs],
                **self.stats,
                "parameters": self._parameters_how,
            },
        )
        return info

    def benchmark(
        self, inputs: Any, num_runs: int = 100, progress: Callable[[int], None] | None = None
    ) -> dict[str, float]:
        """Time ``run`` (after one warm-up run that compiles), its host-side steps included (the text
        analysis of documents, string codes): statistics in ms, and rows per second. ``progress``, if
        given, is called with the number of runs done after each run."""
        if num_runs < 1:
            raise ValueError(f"num_runs must be >= 1, got {num_runs}")
        wanted = self._run_outputs()
        self._run_named(inputs, wanted)  # (compiles; refuses bad inputs before any timing)
        times = []
        for _ in range(num_runs):
            t0 = time.perf_counter()
            self._run_named(inputs, wanted)
            times.append((time.perf_counter() - t0) * 1e3)
            if progress is not None:
                progress(len(times))
        t = np.array(times)
        rows = _row_count(as_input_list(inputs, self._input_names)[0])
        return {
            "mean_ms": float(t.mean()),
            "std_ms": float(t.std()),
            "min_ms": float(t.min()),
            "max_ms": float(t.max()),
            "median_ms": float(np.median(t)),
            "p95_ms": float(np.percentile(t, 95)),
            "throughput_rows_per_s": float(rows / (t.mean() / 1e3)) if t.mean() > 0 else float("inf"),
            "num_runs": num_runs,
            "batch_size": rows,
        }


def _row_count(x: Any) -> int:
    """How many rows an input has (0 for a scalar: ``_prepare`` refuses it by shape)."""
    if is_sparse(x):
        return int(x.shape[0])
    try:
        return len(x)
    except TypeError:
        return 0


def _rows(x: Any, start: int, stop: int) -> Any:
    """Rows start..stop of an input: a DataFrame's by position, or an array's or a list's."""
    return x.iloc[start:stop] if hasattr(x, "iloc") else x[start:stop]


def _lookup(classes: np.ndarray, index: np.ndarray, what: str) -> np.ndarray:
    """Labels for class indices; a file whose class list is shorter than its model's outputs is refused
    (by the lookup's own bounds check: nothing more on the hot path)."""
    try:
        return classes[index]
    except IndexError:
        raise FormatError(
            f"metadata: {what} lists {len(classes)} classes, but the model chose class #{index.max()}"
        ) from None


def _jaxlib_version() -> str:
    import jaxlib

    return str(getattr(jaxlib, "__version__", "unknown"))


def load_model(path: str | os.PathLike[str], device: str = "cpu", **kwargs: Any) -> MLERuntime:
    """Load an .mle model and return a ready runtime (compilation happens on first run)."""
    runtime = MLERuntime(device=device)
    runtime._load(path, **kwargs)
    return runtime


__all__ = ["MLERuntime", "load_model", "precision_scope"]
