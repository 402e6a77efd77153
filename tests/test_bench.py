"""What ``xdyn bench da`` times (xdyn/bench.py, xdyn/bench_sweep.py) against DAPPER.

DAPPER must run with its statistics reduced to the error (``rc.comps["error_only"]``,
restored afterwards), and xdyn's filters must be warmed up before they are timed.
Speed is not asserted: these runs are a few dozen cycles.
"""

import pytest

pytest.importorskip("dapper")

from dapper.dpr_config import rc  # noqa: E402
from dapper.stats import Stats  # noqa: E402

import xdyn.assimilation  # noqa: E402
import xdyn.bench  # noqa: E402
from xdyn.bench import bench_da  # noqa: E402
from xdyn.bench_sweep import bench_sweep  # noqa: E402


@pytest.fixture
def dapper_stats_mode(monkeypatch):
    """DAPPER's default (full statistics) before the bench; the error_only setting seen by
    each of DAPPER's per-cycle assessments."""
    monkeypatch.setitem(rc.comps, "error_only", False)
    seen = []
    assess = Stats.assess

    def spy(self, *args, **kwargs):
        seen.append(rc.comps["error_only"])
        return assess(self, *args, **kwargs)

    monkeypatch.setattr(Stats, "assess", spy)
    return seen


def _fewer_cycles(monkeypatch, n_cycles):
    setup = xdyn.bench._dapper_setup
    monkeypatch.setattr(xdyn.bench, "_dapper_setup", lambda name, n: setup(name, n_cycles))


def test_dapper_error_only_is_restored_even_after_an_error(monkeypatch):
    from xdyn.bench import _dapper_error_only

    monkeypatch.setitem(rc.comps, "error_only", False)
    with _dapper_error_only():
        assert rc.comps["error_only"] is True
    assert rc.comps["error_only"] is False
    with pytest.raises(RuntimeError, match="inside"), _dapper_error_only():
        raise RuntimeError("inside")
    assert rc.comps["error_only"] is False


def _bench_da_on_one_short_row(monkeypatch, n_repeats=1):
    """bench_da on the Lorenz-63 OI row, 80 cycles; the number of times of each predict."""
    _fewer_cycles(monkeypatch, 80)
    monkeypatch.setitem(xdyn.bench._BENCH_ROWS, "lorenz63", [("OI", "truth")])
    predicted = []
    make = xdyn.assimilation.make_assimilator

    def spying_make(*args, **kwargs):
        est = make(*args, **kwargs)
        predict = type(est).predict
        if not getattr(predict, "spy", False):  # once; on the class: the warm-up's copy too

            def spy(self, obs, *a, **k):
                predicted.append(obs.sizes["time"])
                return predict(self, obs, *a, **k)

            spy.spy = True
            monkeypatch.setattr(type(est), "predict", spy)
        return est

    monkeypatch.setattr(xdyn.assimilation, "make_assimilator", spying_make)
    table = bench_da(quick=True, setups=("lorenz63",), n_repeats=n_repeats)
    row = table.split("\n  OI")[1].splitlines()[0]
    assert "[" not in row  # no error in the timed run
    return table, predicted


def test_bench_da_times_dapper_with_error_only(monkeypatch, dapper_stats_mode):
    table, _ = _bench_da_on_one_short_row(monkeypatch)
    # every per-cycle assessment of DAPPER's timed run computed only the errors
    assert dapper_stats_mode and all(dapper_stats_mode)
    assert rc.comps["error_only"] is False  # DAPPER's default is back
    assert "error_only=True" in table  # and the table says what was timed


def test_bench_da_warms_up_each_row_before_timing_it(monkeypatch):
    _, predicted = _bench_da_on_one_short_row(monkeypatch, n_repeats=2)
    # one short untimed run, then the two timed filter seeds on every time: DAPPER's
    # 81 observation times (ko = 0..80) and its start at t=0
    assert predicted == [10, 82, 82]


def test_bench_sweep_times_dapper_error_only(monkeypatch, dapper_stats_mode):
    _fewer_cycles(monkeypatch, 40)
    rows = bench_sweep(quick=True, n_seeds=1, inflations=(1.0, 1.02))
    assert dapper_stats_mode and all(dapper_stats_mode)
    assert rc.comps["error_only"] is False
    assert "error_only" in rows[0]
