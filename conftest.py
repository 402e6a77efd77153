"""Settings shared by the tests and by the doctests of the ``xdyn`` package.

``pytest`` collects the docstring Examples of every module under ``xdyn/``
(``--doctest-modules`` in ``pyproject.toml``); ``tests/conftest.py`` does not
reach them, so the environment they need is set here: an offscreen matplotlib
backend and a data cache inside the repository, never the user's.
"""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("XDYN_DATA_DIR", os.path.join(os.path.dirname(__file__), ".xdyn-test-cache"))


@pytest.fixture(autouse=True)
def _close_doctest_figures(request):
    yield
    if isinstance(request.node, pytest.DoctestItem):
        import matplotlib.pyplot as plt

        plt.close("all")
