"""Shared fixtures: a seed, offscreen matplotlib, peer-library availability."""

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("XDYN_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".xdyn-test-cache"))


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
