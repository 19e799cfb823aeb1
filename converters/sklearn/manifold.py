"""Manifold learning: Isomap's and LocallyLinearEmbedding's ``transform`` (the other embeddings, t-SNE,
MDS, spectral embedding, have no transform for new rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import manifold

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
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


@converts(manifold.LocallyLinearEmbedding)
def locally_linear_embedding(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """transform: the barycentre weights of each row's n_neighbors nearest training rows (regularized by
    ``reg``), applied to their embedding (``embedding_``, stored in the file with the training rows)."""
    search = est.nbrs_
    fit_x = b.const("fit_X", search._fit_X)
    indices = b.op("KNeighbors", x, fit_x, k=int(est.n_neighbors), **metric_attrs(search))
    embedding = b.const("embedding", np.asarray(est.embedding_, dtype=np.float64))
    out = b.op("LocallyLinear", x, fit_x, indices, embedding, reg=float(est.reg))
    return transformed(out, est.embedding_.shape[1])
