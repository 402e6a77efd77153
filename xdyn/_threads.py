"""Keep small batched torch work on one thread.

Intra-op parallelism only pays for large tensors; on the small matrices of a
filter cycle (tens of members, tens of variables) every op pays the thread
hand-off instead, which is 10x slower when the other cores are busy.
The previous setting is restored on exit (no global state changes).
"""

from __future__ import annotations

import contextlib

import torch

SMALL_WORK = 200_000  # elements per state tensor below which one thread is faster


@contextlib.contextmanager
def threads_for(n_elements: int, limit: int = SMALL_WORK):
    """Use one torch thread while working on tensors of ``n_elements`` or fewer.

    ``limit`` is the size up to which one thread is used (default: a state
    tensor of :data:`SMALL_WORK` elements); callers that measure work in other
    units (weights times batch, grid points per side) pass their own.
    """
    if n_elements > limit:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
