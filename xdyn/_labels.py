"""Matching coordinate labels to a grid: the one place that decides when data stored in
another order (a descending axis) is the same grid, so that every reader of a state, a
truth or a field reorders it the same way instead of reading it by position."""

from __future__ import annotations

import numpy as np


def grid_order(got, want, *, rtol, atol):
    """Indices ``p`` with ``got[p]`` equal to ``want`` within ``rtol`` / ``atol``, or None.

    ``p`` is ``arange`` when ``got`` already matches in order; otherwise the
    k-th smallest of ``got`` goes to the place of the k-th smallest of ``want``
    (the same labels stored in another order). None when the labels are others
    or their numbers differ.

    Examples
    --------
    >>> grid_order([2.0, 1.0, 0.0], [0.0, 1.0, 2.0], rtol=1e-9, atol=0.0).tolist()
    [2, 1, 0]
    >>> grid_order([0.0, 1.5], [0.0, 1.0], rtol=1e-9, atol=0.0) is None
    True
    """
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape or got.ndim != 1:
        return None
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return np.arange(len(want))
    order = np.empty(len(want), dtype=int)
    order[np.argsort(want, kind="stable")] = np.argsort(got, kind="stable")
    return order if np.allclose(got[order], want, rtol=rtol, atol=atol) else None
