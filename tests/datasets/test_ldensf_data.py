"""The shallow-water LD-EnSF sets: shapes, parameter ranges, what the parameters do to
the fields (the bump sits where its parameters say and its waves travel at sqrt(g H);
the shared start, and a stronger forcing a stronger flow), volume kept, and the
cache round-trip by configuration."""

import numpy as np
import pytest

from xdyn.datasets import generated_path, load
from xdyn.datasets.ldensf_data import (shallow_water_ldensf, shallow_water_ldensf_full_config,
                                       tsunami_ldensf, tsunami_ldensf_full_config)


@pytest.fixture(scope="module")
def tsunami():
    return tsunami_ldensf(n_trajectories=3, N=32, n_saved=10)


@pytest.fixture(scope="module")
def atmosphere():
    return shallow_water_ldensf(n_trajectories=3, N=16, n_saved=5, save_every=12,
                                burn_in_days=2.0)


def test_tsunami_shapes_and_parameter_ranges(tsunami):
    assert dict(tsunami.eta.sizes) == {"trajectory": 3, "time": 10, "y": 32, "x": 32}
    assert set(tsunami.data_vars) == {"u", "v", "eta", "bump_x", "bump_y"}
    for p in ("bump_x", "bump_y"):
        assert tsunami[p].dims == ("trajectory",)
        assert ((tsunami[p] >= 0) & (tsunami[p] <= 0.5)).all()
    np.testing.assert_allclose(np.diff(tsunami.time), 540.0)
    # the system's attrs carry no bump location: the preset's released none of these
    import json

    params = json.loads(tsunami.attrs["system_params"])
    assert "bump_x" not in params and params["linear"] is True
    full = tsunami_ldensf_full_config()
    assert (full["N"], full["n_trajectories"]) == (150, 200)


def test_tsunami_bump_sits_at_its_parameters_and_its_waves_travel(tsunami):
    eta0 = tsunami.eta.isel(time=0)
    for i in range(3):
        iy, ix = np.unravel_index(int(np.argmax(eta0.isel(trajectory=i).values)), (32, 32))
        assert abs(ix / 32 - float(tsunami.bump_x[i])) <= 1 / 32
        assert abs(iy / 32 - float(tsunami.bump_y[i])) <= 1 / 32
    # released at rest, the bump spreads as a ring: after t the largest displacement
    # outside the centre's residual lies sqrt(g H) t away (31.3 m/s x 4860 s = 152 km)
    last = tsunami.isel(trajectory=0, time=-1)
    front = np.sqrt(9.81 * 100) * float(last.time)
    dx = (tsunami.x - float(tsunami.bump_x[0]) * 1e6 + 5e5) % 1e6 - 5e5
    dy = (tsunami.y - float(tsunami.bump_y[0]) * 1e6 + 5e5) % 1e6 - 5e5
    r = np.hypot(dx, dy)
    outer = np.abs(last.eta).where(r > front / 2)
    ring = float(r.where(outer == outer.max()).max())
    assert abs(ring - front) < 1.5 * 1e6 / 32              # a grid cell and a half
    # the linear model keeps the volume: the mean surface stays that of the release
    mean = tsunami.eta.mean(("y", "x"))
    np.testing.assert_allclose(mean, np.repeat(mean.values[:, :1], 10, 1), rtol=0, atol=1e-12)


def test_atmosphere_shared_start_and_forcing_drives_the_flow(atmosphere):
    ds = atmosphere
    assert dict(ds.u.sizes) == {"trajectory": 3, "time": 5, "y": 16, "x": 16}
    amp, width = ds.forcing_amplitude, ds.forcing_width
    assert ((amp >= 0.1 * 10) & (amp <= 30 * 10)).all()      # hf0 % of the 1000 m depth
    assert ((width >= 1) & (width <= 4)).all()
    assert amp.attrs["units"] == "m"
    start = ds.isel(time=0)
    for v in ("u", "v", "eta"):
        np.testing.assert_array_equal(start[v].isel(trajectory=0), start[v].isel(trajectory=1))
    # the shared start was spun up at the mean forcing (150.5 m): the trajectory forced
    # hardest gains the most height variance, the one forced least loses it
    change = (ds.eta.isel(time=-1) ** 2).mean(("y", "x")) - (start.eta ** 2).mean(("y", "x"))
    order = np.argsort(amp.values)
    assert change[order[-1]] > change[order[0]]
    assert float(np.abs(ds.eta.isel(trajectory=0, time=-1) - ds.eta.isel(trajectory=1, time=-1)
                        ).max()) > 0.1                       # metres apart after a day
    assert shallow_water_ldensf_full_config()["n_trajectories"] == 200


@pytest.mark.parametrize("name, tiny", [
    ("tsunami-ldensf", {"n_trajectories": 2, "N": 16, "n_saved": 3}),
    ("shallow-water-ldensf", {"n_trajectories": 2, "N": 16, "n_saved": 3, "save_every": 2,
                              "burn_in_days": 0.1})])
def test_generated_sets_are_cached_by_configuration(name, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    first = load(name, **tiny)
    path = generated_path(name, **tiny)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    again = load(name, **tiny)                                # read back from the cache
    assert path.stat().st_mtime_ns == stamp
    for v in first.data_vars:
        np.testing.assert_array_equal(first[v].values, again[v].values)
    assert generated_path(name, **{**tiny, "random_state": 1}) != path


@pytest.mark.parametrize("name", ["kolmogorov", "tsunami", "shallow-water"])
def test_held_out_trajectories_leave_the_others_as_they_were(name):
    """``n_held_out`` appends trajectories (the shared start where there is one, new
    parameters) without changing the first ``n_trajectories``: a calibration set."""
    from xdyn.datasets.ldensf_data import kolmogorov_ldensf

    make, params = {
        "kolmogorov": (lambda **kw: kolmogorov_ldensf(N=16, n_saved=3, burn_in_steps=2, **kw),
                       ["Re"]),
        "tsunami": (lambda **kw: tsunami_ldensf(N=16, n_saved=3, **kw), ["bump_x", "bump_y"]),
        "shallow-water": (lambda **kw: shallow_water_ldensf(N=16, n_saved=3, save_every=4,
                                                            burn_in_days=0.5, batch_size=1,
                                                            **kw),
                          ["forcing_amplitude", "forcing_width"])}[name]
    plain = make(n_trajectories=3, random_state=4)
    more = make(n_trajectories=3, random_state=4, n_held_out=2)
    assert more.sizes["trajectory"] == 5
    np.testing.assert_array_equal(more.isel(trajectory=slice(0, 3))[params[0]], plain[params[0]])
    field = [v for v in more.data_vars if more[v].ndim == 4][0]
    np.testing.assert_allclose(more[field].isel(trajectory=slice(0, 3)), plain[field],
                               rtol=1e-12, atol=1e-12)
    new = more.isel(trajectory=slice(3, None))
    for p in params:
        assert not np.isin(new[p].values, plain[p].values).any()  # new draws
    if name != "tsunami":  # one shared start
        start = plain[field].isel(trajectory=0, time=0).values
        for traj in new[field].isel(time=0).values:
            np.testing.assert_array_equal(traj, start)


def test_tsunami_releases_batched_as_one_at_a_time():
    """A batched call integrates each release as its own run does (to round-off)."""
    one = tsunami_ldensf(n_trajectories=3, N=16, n_saved=4, batch_size=1)
    batched = tsunami_ldensf(n_trajectories=3, N=16, n_saved=4, batch_size=2)
    assert dict(batched.eta.sizes) == dict(one.eta.sizes)
    for v in ("u", "v", "eta"):
        np.testing.assert_allclose(batched[v], one[v], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(batched.trajectory, np.arange(3))
