"""Sparse coding against a learnt or given dictionary: DictionaryLearning, MiniBatchDictionaryLearning
and SparseCoder ``transform`` with the "omp" (their default) or "threshold" algorithm; the iterative
lasso and LARS solvers are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import decomposition

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError

ALGORITHMS = ("omp", "threshold")


@converts(decomposition.DictionaryLearning, decomposition.MiniBatchDictionaryLearning, decomposition.SparseCoder)
def sparse_coding(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """sparse_encode(x, dictionary) as the estimator's transform calls it, then ``split_sign``'s positive
    and negative halves side by side where set."""
    algorithm = est.transform_algorithm
    if algorithm not in ALGORITHMS:
        raise UnsupportedModelError(
            f"{type(est).__name__}(transform_algorithm={algorithm!r}) is not supported (an iterative solver); "
            f"supported: {list(ALGORITHMS)}"
        )
    if est.positive_code and algorithm == "omp":  # (scikit-learn's transform raises)
        raise UnsupportedModelError(f"{type(est).__name__}: positive_code is not supported with omp")
    dictionary = np.asarray(est.components_ if hasattr(est, "components_") else est.dictionary, np.float64)
    atoms = len(dictionary)
    cov = b.op("Gemm", x, b.const("dictionary", dictionary.T))
    if algorithm == "omp":
        n_nonzero = est.transform_n_nonzero_coefs
        if n_nonzero is None:
            n_nonzero = min(max(n_features / 10, 1), atoms)
        if not 0 < int(n_nonzero) <= atoms:
            raise UnsupportedModelError(
                f"{type(est).__name__}: transform_n_nonzero_coefs={n_nonzero} outside 1..{atoms} (the atoms)"
            )
        gram = b.const("gram", dictionary @ dictionary.T)
        code = b.op("OrthogonalMatchingPursuit", cov, gram, n_nonzero=int(n_nonzero))
    else:
        alpha = est.transform_alpha
        if alpha is None:  # DictionaryLearning's own alpha; a SparseCoder's is 1
            alpha = getattr(est, "alpha", 1.0)
        code = b.op("SoftThreshold", cov, threshold=float(alpha), positive=bool(est.positive_code))
    if est.split_sign:
        return transformed(b.op("SplitSign", code), 2 * atoms)
    return transformed(code, atoms)
