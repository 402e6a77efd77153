"""Shared fixtures (a seed, offscreen matplotlib); the cores split between test workers."""

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("XDYN_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".xdyn-test-cache"))

_MAX_WORKERS = 4  # more workers would share the memory of a small machine too thinly


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core, at most four."""
    return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))


def pytest_configure(config):
    """Split the cores between the workers so that their BLAS and torch threads do not contend."""
    n_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if n_workers > 1:
        import threadpoolctl
        import torch

        per_worker = max(1, (os.cpu_count() or 1) // n_workers)
        threadpoolctl.threadpool_limits(per_worker)
        torch.set_num_threads(per_worker)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a test module (``pytestmark = usefixtures(...)``): small FFTs
    are much slower with threads on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def seed():
    """The seed every test uses unless it needs several."""
    return 0


@pytest.fixture
def rng(seed):
    return np.random.RandomState(seed)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
