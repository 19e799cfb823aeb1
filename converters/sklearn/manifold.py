"""Manifold learning: Isomap's ``transform`` (the other embeddings, t-SNE, MDS, spectral embedding, have
no transform for new rows; LocallyLinearEmbedding's is not converted)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import manifold

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.converters.sklearn.kernels import kernel_pca_projection
from mle_runtime.converters.sklearn.neighbors import metric_attrs
from mle_runtime.errors import UnsupportedModelError


@converts(manifold.Isomap)
def isomap(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """transform: each row's geodesic distances to the training rows (through its n_neighbors nearest,
    along the training graph's shortest paths, ``dist_matrix_``: stored in the file, train rows squared),
    as -0.5 d**2 through the fitted kernel PCA."""
    if est.n_neighbors is None:
        raise UnsupportedModelError("Isomap fitted with a radius (n_neighbors=None) is not supported; use n_neighbors")
    search = est.nbrs_
    metric = metric_attrs(search)
    fit_x = b.const("fit_X", search._fit_X)
    indices = b.op("KNeighbors", x, fit_x, k=int(search.n_neighbors), **metric)
    distances = b.op("NeighborDistances", x, fit_x, indices, **metric)
    paths = b.const("dist_matrix", np.asarray(est.dist_matrix_, dtype=np.float64))
    geodesic = b.op("GeodesicDistances", distances, indices, paths)
    kernel = b.op("Mul", b.op("Mul", geodesic, geodesic), b.const("minus_half", np.array(-0.5)))
    return kernel_pca_projection(est.kernel_pca_, b, kernel)
