"""Thread use for small batched work.

Intra-op parallelism only pays for large tensors; on the small matrices of a
filter cycle (tens of members, tens of variables) every op pays the thread
hand-off instead, which is 10x slower when the other cores are busy. So
:func:`threads_for` keeps torch on one thread for small work (the previous
setting is restored on exit: no global state changes).

Coarse parallelism still pays where fine-grained does not: a batch of
independent problems (the members of a large ensemble, the grid points of a
local analysis) split into one block per core, each block a whole kernel on one
thread. :func:`map_blocks` does that, on the cores torch was allowed to use
before :func:`threads_for` narrowed it (one, inside a dask worker started by
``xdyn run --all``, which sets one torch thread per worker).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

SMALL_WORK = 200_000  # elements per state tensor below which one thread is faster

_budget = threading.local()  # the thread count threads_for narrowed, per calling thread
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@contextlib.contextmanager
def threads_for(n_elements: int):
    """Use one torch thread while working on tensors of ``n_elements`` or fewer."""
    if n_elements > SMALL_WORK:
        yield
        return
    before = torch.get_num_threads()
    outer = getattr(_budget, "value", None)
    _budget.value = before if outer is None else outer
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _budget.value = outer


def available_threads() -> int:
    """Cores this thread may use for block parallelism (torch's thread budget)."""
    value = getattr(_budget, "value", None)
    return int(value) if value is not None else torch.get_num_threads()


def map_blocks(fn, blocks):
    """``[fn(b) for b in blocks]``, the blocks on parallel threads when cores allow.

    ``fn`` must release the GIL for most of its time (numpy ufuncs and torch ops
    do) and must not share mutable state between blocks. The results are the same
    as the serial ones, in the order of ``blocks``.
    """
    blocks = list(blocks)
    if len(blocks) < 2 or available_threads() < 2:
        return [fn(b) for b in blocks]
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                       thread_name_prefix="xdyn-block")
    # the caller's thread computes the first block itself: one hand-off fewer
    futures = [_pool.submit(fn, b) for b in blocks[1:]]
    first = fn(blocks[0])
    return [first] + [f.result() for f in futures]
