"""The embedding figure's UMAP compiles into numba's on-disk cache, so a new process does not recompile it."""
import sys

import numpy as np
import pytest


def test_every_umap_kernel_the_figure_compiles_is_disk_cached():
    """No timing (that depends on the machine and its load): the kernels UMAP compiled for a small projection all
    carry numba's file cache, so the next process loads them. Fails if a umap upgrade moves a kernel to a module
    ``UMAP_JIT_MODULES`` does not name. The first run on a machine compiles (about 25 s), later ones load."""
    pytest.importorskip("umap")
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    from reid_ray.viz.umap_plot import MIN_UMAP_POINTS, UMAP_JIT_MODULES, project_2d

    x = np.random.default_rng(0).normal(size=(MIN_UMAP_POINTS + 5, 32)).astype(np.float32)
    xy, method = project_2d(x)
    assert method == "umap" and xy.shape == (len(x), 2) and np.isfinite(xy).all()
    compiled = {f"{name}.{k}": obj for name in UMAP_JIT_MODULES if name in sys.modules
                for k, obj in vars(sys.modules[name]).items() if isinstance(obj, Dispatcher) and obj.overloads}
    assert "umap.utils.fast_knn_indices" in compiled and "umap.umap_.smooth_knn_dist" in compiled
    # Kernels with a declared signature compile at import (not in the fit): no cache needed for them to be cheap.
    uncached = [k for k, obj in compiled.items() if isinstance(obj._cache, NullCache) and obj._can_compile]
    assert uncached == []
