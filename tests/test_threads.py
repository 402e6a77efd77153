"""Thread use of small batched work (xdyn._threads)."""

import threading

import torch

from xdyn._threads import available_threads, map_blocks, threads_for


def test_threads_for_narrows_torch_but_keeps_the_budget_for_blocks():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threads_for(10):
            assert torch.get_num_threads() == 1  # no intra-op hand-offs on small work
            assert available_threads() == 2  # whole blocks may still use both cores
            with threads_for(10):  # nested: the outermost budget stays
                assert available_threads() == 2
            assert available_threads() == 2
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with threads_for(10):
            assert available_threads() == 1  # e.g. a dask worker told to use one thread
    finally:
        torch.set_num_threads(before)


def test_map_blocks_keeps_order_and_uses_threads_only_when_allowed():
    before = torch.get_num_threads()
    seen = []

    def work(b):
        seen.append(threading.current_thread().name)
        return b * 10

    try:
        torch.set_num_threads(1)
        assert map_blocks(work, [1, 2, 3]) == [10, 20, 30]
        assert all(not name.startswith("xdyn-block") for name in seen)
        seen.clear()
        torch.set_num_threads(2)
        assert map_blocks(work, [1, 2, 3]) == [10, 20, 30]
        assert any(name.startswith("xdyn-block") for name in seen)
    finally:
        torch.set_num_threads(before)
