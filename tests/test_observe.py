"""Observation operators (on layouts, Datasets and torch tensors) and synthetic observations."""

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.observe import (
    Arctan,
    EveryKth,
    Identity,
    ObservationOperator,
    RandomPoints,
    SelectVariables,
    Squared,
    layout_from_dataset,
    make_operator,
    observe,
    operator_from_spec,
)
from xdyn.systems import Lorenz63, Lorenz96, StateVariable

GRID = [StateVariable("w", ("y", "x"), (8, 8), {"units": "m s-1"})]


# --------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def l96_truth():
    return Lorenz96(n=40).simulate(n_steps=20, random_state=0)


@pytest.fixture(scope="module")
def l63_truth():
    return Lorenz63().simulate(n_steps=20, random_state=0)


def _field_dataset(n_time=6, ny=8, nx=8, seed=0, names=("u", "v")):
    """A small doubly periodic (y, x) Dataset with non-integer spatial coordinates."""
    rng = np.random.RandomState(seed)
    coords = {
        "time": ("time", 0.1 * np.arange(n_time), {"units": "1"}),
        "y": ("y", np.linspace(0, 2 * np.pi, ny, endpoint=False)),
        "x": ("x", np.linspace(0, 2 * np.pi, nx, endpoint=False)),
    }
    data = {n: (("time", "y", "x"), 3.0 + rng.standard_normal((n_time, ny, nx)), {"units": "m s-1"})
            for n in names}
    return xr.Dataset(data, coords=coords, attrs={"system": "synthetic"})


def _line_dataset(n_time=500, n_sites=40, seed=0):
    """Cheap (time, k) state, nonzero everywhere, for noise statistics."""
    rng = np.random.RandomState(seed)
    return xr.Dataset(
        {"x": (("time", "k"), 5.0 + rng.uniform(-1, 1, (n_time, n_sites)), {"units": "1"})},
        coords={"time": 0.05 * np.arange(n_time), "k": np.arange(n_sites)},
    )


# --------------------------------------------------------------------- layouts
def test_layout_from_dataset_reads_state_dims(l96_truth):
    layout = layout_from_dataset(l96_truth)
    assert [(v.name, v.dims, v.shape) for v in layout] == [("x", ("k",), (40,))]
    ds = _field_dataset()
    assert [(v.name, v.dims, v.shape, v.size) for v in layout_from_dataset(ds)] == [
        ("u", ("y", "x"), (8, 8), 64), ("v", ("y", "x"), (8, 8), 64)]
    # trajectory / member are sample dims too
    layout = layout_from_dataset(ds.expand_dims(trajectory=2, member=3))
    assert layout[0].dims == ("y", "x")
    # a DataArray is one variable
    assert layout_from_dataset(ds.u)[0].name == "u"


@pytest.mark.parametrize("op", [Identity(), SelectVariables("x"), EveryKth(4), RandomPoints(5)])
def test_operators_accept_a_dataset_as_layout(l96_truth, op):
    # xr.Dataset has a ``variables`` attribute of its own: it must not be mistaken for a system's
    np.testing.assert_array_equal(op.indices(l96_truth), op.indices(Lorenz96(n=40)))
    assert op.n_obs(l96_truth) == len(op.indices(Lorenz96(n=40)))


# --------------------------------------------------------------------- indices
def test_indices_lorenz63():
    l63 = Lorenz63()
    np.testing.assert_array_equal(Identity().indices(l63), [0, 1, 2])
    np.testing.assert_array_equal(SelectVariables("y").indices(l63), [1])
    np.testing.assert_array_equal(SelectVariables(["x", "z"]).indices(l63), [0, 2])
    # obs order follows the requested order
    np.testing.assert_array_equal(SelectVariables(["z", "x"]).indices(l63), [2, 0])
    np.testing.assert_array_equal(Squared(SelectVariables("x")).indices(l63), [0])
    np.testing.assert_array_equal(Squared().indices(l63), [0, 1, 2])
    # every scalar is one point
    np.testing.assert_array_equal(RandomPoints(1, random_state=0).indices(l63), [0, 1, 2])
    with pytest.raises(ValueError, match="n_points"):
        RandomPoints(2).indices(l63)
    with pytest.raises(ValueError, match="thin"):
        EveryKth(2).indices(l63)  # no spatial dim
    with pytest.raises(ValueError, match="'q'"):
        SelectVariables(["x", "q"]).indices(l63)


def test_indices_lorenz96():
    l96 = Lorenz96(n=40)
    np.testing.assert_array_equal(Identity().indices(l96), np.arange(40))
    np.testing.assert_array_equal(SelectVariables("x").indices(l96), np.arange(40))
    np.testing.assert_array_equal(EveryKth(4).indices(l96), np.arange(0, 40, 4))
    np.testing.assert_array_equal(EveryKth(4, offset=2).indices(l96), np.arange(2, 40, 4))
    np.testing.assert_array_equal(EveryKth(3, dim="k").indices(l96), np.arange(0, 40, 3))
    idx = RandomPoints(7, random_state=3).indices(l96)
    assert len(idx) == 7 and len(np.unique(idx)) == 7
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 40
    np.testing.assert_array_equal(Squared(EveryKth(5)).indices(l96), np.arange(0, 40, 5))
    assert EveryKth(4).n_obs(l96) == 10
    with pytest.raises(ValueError, match="k must be"):
        EveryKth(0).indices(l96)
    with pytest.raises(ValueError, match="'q'"):
        EveryKth(4, variables="q").indices(l96)
    with pytest.raises(ValueError, match="'q'"):
        RandomPoints(4, variables=["q"]).indices(l96)


def test_indices_2d_grid():
    grid = np.arange(64).reshape(8, 8)  # flat index of (y, x)
    np.testing.assert_array_equal(Identity().indices(GRID), np.arange(64))
    # default: the first spatial dim (y) is thinned, rows kept whole
    np.testing.assert_array_equal(EveryKth(4).indices(GRID), grid[::4].ravel())
    np.testing.assert_array_equal(EveryKth(2, dim="x").indices(GRID), grid[:, ::2].ravel())
    np.testing.assert_array_equal(EveryKth(3, offset=1, dim="x").indices(GRID), grid[:, 1::3].ravel())
    with pytest.raises(ValueError, match="'z'"):
        EveryKth(2, dim="z").indices(GRID)
    idx = RandomPoints(10, random_state=0).indices(GRID)
    assert len(np.unique(idx)) == 10 and idx.max() < 64


def test_random_points_same_network_for_every_field():
    ds = _field_dataset()
    idx = RandomPoints(6, random_state=2).indices(ds)
    assert len(idx) == 12
    np.testing.assert_array_equal(idx[6:], idx[:6] + 64)
    only_v = RandomPoints(6, variables="v", random_state=2).indices(ds)
    np.testing.assert_array_equal(only_v, idx[6:])


def test_random_points_fixed_by_seed():
    l96 = Lorenz96(n=40)
    a = RandomPoints(8, random_state=1).indices(l96)
    np.testing.assert_array_equal(a, RandomPoints(8, random_state=1).indices(l96))
    op = RandomPoints(8, random_state=1)
    np.testing.assert_array_equal(op.indices(l96), op.indices(l96))  # seed not consumed
    np.testing.assert_array_equal(a, RandomPoints(8, random_state=np.int64(1)).indices(l96))
    assert not np.array_equal(a, RandomPoints(8, random_state=2).indices(l96))
    for bad in (None, np.random.RandomState(0), 1.5, "1"):
        with pytest.raises(TypeError, match="integer random_state"):
            RandomPoints(8, random_state=bad).indices(l96)


# --------------------------------------------------------------------- apply on tensors
OPERATORS = [
    Identity(), SelectVariables("x"), EveryKth(4), EveryKth(3, offset=1),
    RandomPoints(6, random_state=0), Squared(EveryKth(4)), Squared(),
]


@pytest.mark.parametrize("op", OPERATORS, ids=repr)
def test_apply_batched_equals_numpy_indexing(op):
    layout = Lorenz96(n=40)
    x = torch.randn(3, 5, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = op.apply(x, layout)
    expected = x.numpy()[..., op.indices(layout)]
    if not op.linear:
        expected = expected**2
    assert out.shape == (3, 5, op.n_obs(layout))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=0)
    # a single unbatched state too
    np.testing.assert_allclose(op.apply(x[0, 0], layout).numpy(), expected[0, 0])


@pytest.mark.parametrize("layout", [Lorenz63(), GRID], ids=["l63", "grid"])
def test_apply_on_other_layouts(layout):
    n = sum(v.size for v in (layout.variables if hasattr(layout, "variables") else layout))
    x = torch.randn(2, 4, n, dtype=torch.float64)
    op = SelectVariables("x") if isinstance(layout, Lorenz63) else EveryKth(2, dim="x")
    np.testing.assert_array_equal(op.apply(x, layout).numpy(), x.numpy()[..., op.indices(layout)])


def test_squared_is_differentiable():
    layout = Lorenz96(n=12)
    op = Squared(EveryKth(3))
    x = torch.randn(2, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: op.apply(z, layout), (x,))
    op.apply(x, layout).sum().backward()
    idx = op.indices(layout)
    other = np.setdiff1d(np.arange(12), idx)
    np.testing.assert_allclose(x.grad[..., idx].numpy(), 2 * x.detach()[..., idx].numpy())
    assert torch.all(x.grad[..., other] == 0)


def test_linear_operators_differentiable_with_unit_gradient():
    layout = Lorenz96(n=12)
    x = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    RandomPoints(5, random_state=0).apply(x, layout).sum().backward()
    assert float(x.grad.sum()) == pytest.approx(4 * 5)


LINEAR_CASES = [(layout, op) for layout in (Lorenz96(n=40), GRID) for op in OPERATORS
                if op.linear and not isinstance(op, SelectVariables)]
LINEAR_CASES += [(Lorenz96(n=40), SelectVariables("x")), (GRID, SelectVariables("w")),
                 (Lorenz63(), SelectVariables(["z", "x"]))]


@pytest.mark.parametrize("layout, op", LINEAR_CASES, ids=repr)
def test_matrix_matches_apply(layout, op):
    H = op.matrix(layout)
    n = H.shape[1]
    assert n == sum(v.size for v in (layout.variables if hasattr(layout, "variables") else layout))
    assert H.shape[0] == op.n_obs(layout)
    assert np.all(H.sum(1) == 1)  # one observed entry per row
    x = torch.randn(3, 2, n, dtype=torch.float64)
    np.testing.assert_allclose(x.numpy() @ H.T, op.apply(x, layout).numpy())


def test_squared_has_no_matrix():
    with pytest.raises(ValueError, match="nonlinear"):
        Squared(SelectVariables("x")).matrix(Lorenz63())
    assert Squared.linear is False and Identity.linear is True


# --------------------------------------------------------------------- obs coords
def test_obs_coords_lorenz96_every4():
    c = EveryKth(4).obs_coords(Lorenz96(n=40))
    np.testing.assert_array_equal(c["k"][1], np.arange(0, 40, 4))
    np.testing.assert_array_equal(c["state_index"][1], np.arange(0, 40, 4))
    np.testing.assert_array_equal(c["obs"][1], np.arange(10))
    assert set(c["variable"][1]) == {"x"}
    assert all(v[0] == "obs" for v in c.values())


def test_obs_coords_lorenz63_variables():
    c = SelectVariables(["z", "x"]).obs_coords(Lorenz63())
    assert list(c["variable"][1]) == ["z", "x"]
    np.testing.assert_array_equal(c["state_index"][1], [2, 0])
    assert set(c) == {"obs", "variable", "state_index"}


def test_obs_coords_random_points_on_grid_match_state_index():
    ds = _field_dataset()
    op = RandomPoints(9, random_state=4)
    c = op.obs_coords(ds)
    flat = c["state_index"][1]
    var = c["variable"][1]
    y, x = c["y"][1], c["x"][1]
    assert (var[:9] == "u").all() and (var[9:] == "v").all()
    offset = np.where(var == "v", 64, 0)
    np.testing.assert_array_equal(np.ravel_multi_index((y, x), (8, 8)) + offset, flat)
    assert y.min() >= 0 and x.min() >= 0 and y.max() < 8 and x.max() < 8


# --------------------------------------------------------------------- observe()
def test_observe_dims_sizes_and_coords(l96_truth):
    obs = observe(l96_truth, "every4", noise_std=1.0, every=2, random_state=0)
    assert dict(obs.sizes) == {"time": 11, "obs": 10}
    assert obs.observation.dims == ("time", "obs")
    assert obs.observation_clean.dims == ("time", "obs")
    assert obs.noise_std.dims == ("obs",)
    np.testing.assert_array_equal(obs.time, l96_truth.time[::2])
    np.testing.assert_array_equal(obs.k, np.arange(0, 40, 4))
    assert obs.time.attrs["units"] == "1"
    # the clean observations are the truth at the observed sites and times
    np.testing.assert_allclose(obs.observation_clean,
                               l96_truth.x.isel(time=slice(None, None, 2), k=obs.k.values))
    assert obs.observation.attrs["units"] == "1"
    # truth attrs are kept (they say how the state was made)
    assert obs.attrs["system"] == "Lorenz96"


def test_observe_grid_coords_locate_observations():
    ds = _field_dataset()
    obs = observe(ds, RandomPoints(5, random_state=0), noise_std=0.1, random_state=0)
    for var in ("u", "v"):
        sel = obs.where(obs.variable == var, drop=True)
        expected = ds[var].isel(y=xr.DataArray(sel.y_index.values.astype(int), dims="obs"),
                                x=xr.DataArray(sel.x_index.values.astype(int), dims="obs"))
        np.testing.assert_allclose(sel.observation_clean, expected)
        # the x / y coords hold coordinate values: sel with them finds the same points
        by_value = ds[var].sel(y=xr.DataArray(sel.y.values, dims="obs"),
                               x=xr.DataArray(sel.x.values, dims="obs"))
        np.testing.assert_allclose(sel.observation_clean, by_value)
    assert obs.observation.attrs["units"] == "m s-1"


def test_observe_lorenz63_subset_and_squared(l63_truth):
    obs = observe(l63_truth, ["x", "z"], noise_std=0.0, random_state=0)
    np.testing.assert_allclose(obs.observation.sel(obs=0), l63_truth.x)
    np.testing.assert_allclose(obs.observation.sel(obs=1), l63_truth.z)
    sq = observe(l63_truth, "x^2", noise_std=0.0)
    assert sq.sizes["obs"] == 1
    np.testing.assert_allclose(sq.observation.isel(obs=0), l63_truth.x**2)


def test_observe_noise_statistics():
    ds = _line_dataset()
    obs = observe(ds, "identity", noise_std=0.7, random_state=0)
    err = (obs.observation - obs.observation_clean).values
    n = err.size
    assert n == 500 * 40
    assert abs(err.std() / 0.7 - 1) < 0.03
    assert abs(err.mean()) < 4 * 0.7 / np.sqrt(n)
    # zero noise: exact
    exact = observe(ds, "identity", noise_std=0.0, random_state=0)
    np.testing.assert_array_equal(exact.observation, exact.observation_clean)


def test_observe_noise_std_per_observation():
    ds = _line_dataset()
    std = np.linspace(0.2, 2.0, 10)
    obs = observe(ds, "every4", noise_std=std, random_state=1)
    np.testing.assert_allclose(obs.noise_std, std)
    emp = (obs.observation - obs.observation_clean).std("time").values
    np.testing.assert_allclose(emp / std, 1, atol=0.2)  # 500 samples per site
    assert np.corrcoef(emp, std)[0, 1] > 0.98
    # not the mean (O6, 2026-12-08): one std where they are equal, else their RMS, named so
    assert "obs_noise_std" not in obs.attrs
    assert obs.attrs["obs_noise_std_rms"] == pytest.approx(np.sqrt(np.mean(std**2)))
    with pytest.raises(ValueError, match="noise_std"):
        observe(ds, "every4", noise_std=np.ones(7))


def test_observe_every_subsamples_times(l96_truth):
    for every in (1, 3, 7):
        obs = observe(l96_truth, "every4", every=every, random_state=0)
        np.testing.assert_array_equal(obs.time, l96_truth.time.values[::every])
        assert obs.attrs["obs_every"] == every


def test_observe_irregular_times(l96_truth):
    times = l96_truth.time.values[[0, 1, 5, 6, 13, 20]]
    obs = observe(l96_truth, "every4", noise_std=0.5, times=times, every=5, random_state=0)
    np.testing.assert_array_equal(obs.time.values, times)  # exact times, `every` ignored
    assert obs.attrs["obs_every"] == "irregular"
    np.testing.assert_allclose(obs.observation_clean,
                               l96_truth.x.sel(time=times).isel(k=slice(None, None, 4)))


def test_observe_missing_values_are_nan():
    ds = _line_dataset()
    obs = observe(ds, "identity", noise_std=1.0, missing_fraction=0.3, random_state=0)
    y = obs.observation.values
    frac = np.isnan(y).mean()
    assert abs(frac - 0.3) < 0.02
    assert not np.any(y == 0)  # missing is NaN, never a zero
    assert not np.isnan(obs.observation_clean.values).any()
    assert obs.attrs["missing_fraction"] == 0.3
    assert not np.isnan(observe(ds, "identity", random_state=0).observation.values).any()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="missing_fraction"):
            observe(ds, "identity", missing_fraction=bad)


@pytest.mark.parametrize("op", ["identity", "x", "every4", "x^2", RandomPoints(5, random_state=3),
                                EveryKth(3, offset=1), Squared(EveryKth(4))], ids=repr)
def test_observe_attrs_round_trip_operator(l96_truth, op):
    obs = observe(l96_truth, op, noise_std=0.5, random_state=0)
    spec = obs.attrs["operator"]
    assert isinstance(spec, str) and json.loads(spec)["operator"]
    rebuilt = operator_from_spec(spec)
    built = make_operator(op)
    assert type(rebuilt) is type(built)
    assert rebuilt.spec() == built.spec()
    np.testing.assert_array_equal(rebuilt.indices(Lorenz96(n=40)), built.indices(Lorenz96(n=40)))
    assert obs.attrs["obs_noise_std"] == 0.5
    np.testing.assert_array_equal(obs.noise_std, 0.5)
    assert obs.attrs["obs_random_state"] == 0


def test_operator_from_spec_errors_and_dicts():
    with pytest.raises(ValueError, match="Bogus"):
        operator_from_spec('{"operator": "Bogus"}')
    op = operator_from_spec({"operator": "EveryKth", "k": 5, "offset": 1, "dim": None, "variables": None})
    assert (op.k, op.offset) == (5, 1)
    spec = {"operator": "Squared", "base": None}
    assert operator_from_spec(dict(spec)).base is None
    assert spec == {"operator": "Squared", "base": None}  # the caller's dict is not mutated


def test_observe_reproducible(l96_truth):
    a = observe(l96_truth, "every4", random_state=3, missing_fraction=0.2)
    b = observe(l96_truth, "every4", random_state=3, missing_fraction=0.2)
    xr.testing.assert_identical(a, b)
    c = observe(l96_truth, "every4", random_state=4, missing_fraction=0.2)
    assert not np.allclose(np.nan_to_num(a.observation), np.nan_to_num(c.observation))
    rs = observe(l96_truth, "every4", random_state=np.random.RandomState(3))
    # not "None", an unseeded call's record (O2, 2026-12-08)
    assert rs.attrs["obs_random_state"] == "RandomState instance (seed not recorded)"


def test_observe_trajectory_dim():
    truth = Lorenz96(n=12).simulate(n_trajectories=3, n_steps=6, random_state=0)
    obs = observe(truth, "every4", noise_std=1.0, every=2, random_state=0)
    assert obs.observation.dims == ("trajectory", "time", "obs")
    assert dict(obs.sizes) == {"trajectory": 3, "time": 4, "obs": 3}
    np.testing.assert_array_equal(obs.trajectory, truth.trajectory)
    np.testing.assert_allclose(obs.observation_clean,
                               truth.x.isel(time=slice(None, None, 2), k=[0, 4, 8]))
    err = (obs.observation - obs.observation_clean).values
    assert not np.allclose(err[0], err[1])  # independent noise per trajectory
    # member dim handled the same way
    ens = _line_dataset(n_time=4, n_sites=8).expand_dims(member=2)
    assert observe(ens, "every4").observation.dims == ("member", "time", "obs")


def test_observe_errors(l96_truth):
    with pytest.raises(ValueError, match="'q'"):
        observe(l96_truth, "q")
    with pytest.raises(ValueError, match="'q'"):
        observe(l96_truth, ["x", "q"])
    with pytest.raises(ValueError, match="time"):
        observe(l96_truth.isel(time=0), "identity")
    with pytest.raises(ValueError, match="noise_std"):
        observe(l96_truth, "identity", noise_std=-1.0)
    with pytest.raises(ValueError, match="noise_std"):
        observe(l96_truth, "identity", noise_std=np.r_[np.ones(39), -1.0])
    with pytest.raises(ValueError, match="noise_std"):
        observe(l96_truth, "identity", noise_std=np.nan)
    for every in (0, -2):
        with pytest.raises(ValueError, match="every"):
            observe(l96_truth, "identity", every=every)
    for bad in (l96_truth.x, l96_truth.x.values, {"x": 1}):
        with pytest.raises(TypeError, match="Dataset"):
            observe(bad, "identity")
    with pytest.raises(TypeError):
        observe(l96_truth, 3.5)


def test_observation_dataset_netcdf_round_trip(tmp_path, l96_truth):
    obs = observe(l96_truth, RandomPoints(6, random_state=1), noise_std=0.5, every=2,
                  missing_fraction=0.1, random_state=0)
    path = tmp_path / "obs.nc"
    obs.to_netcdf(path)
    with xr.open_dataset(path) as back:
        back = back.load()
    xr.testing.assert_identical(back, obs)
    assert list(back.variable.values) == ["x"] * 6
    np.testing.assert_array_equal(back.k, obs.k)
    np.testing.assert_array_equal(np.isnan(back.observation), np.isnan(obs.observation))
    assert operator_from_spec(back.attrs["operator"]).indices(l96_truth).tolist() == obs.k.values.tolist()
    irregular = observe(l96_truth, "x", times=l96_truth.time.values[[0, 3, 4]], random_state=0)
    irregular.to_netcdf(tmp_path / "irregular.nc")
    with xr.open_dataset(tmp_path / "irregular.nc") as back:
        xr.testing.assert_identical(back.load(), irregular)


# --------------------------------------------------------------------- make_operator
def test_make_operator_specs():
    assert isinstance(make_operator("identity"), Identity)
    assert isinstance(make_operator(None), Identity)
    x = make_operator("x")
    assert isinstance(x, SelectVariables) and x.variables == "x"
    xy = make_operator(["x", "y"])
    assert isinstance(xy, SelectVariables) and xy.variables == ["x", "y"]
    assert make_operator(("x", "y")).variables == ["x", "y"]
    for spec in ("x^2", "x**2", "x2"):
        sq = make_operator(spec)
        assert isinstance(sq, Squared) and sq.base.variables == "x", spec
    # one suffix off, not every trailing '^', '*' and '2': "x2^2" squared x
    for spec in ("x2^2", "co2**2", "h22^2"):
        assert make_operator(spec).base.variables == spec.split("^")[0].split("*")[0], spec
    ev = make_operator("every4")
    assert isinstance(ev, EveryKth) and ev.k == 4
    assert make_operator("every10").k == 10
    op = RandomPoints(3, random_state=1)
    assert make_operator(op) is op
    for bad in (3, 2.5, {"x": 1}, object()):
        with pytest.raises(TypeError):
            make_operator(bad)
    assert all(isinstance(make_operator(s), ObservationOperator)
               for s in ("identity", "x", ["x"], "x^2", "every2"))
    np.testing.assert_array_equal(make_operator("x^2").apply(torch.tensor([[3.0, 1.0, 2.0]]), Lorenz63()),
                                  [[9.0]])


# ------------------------------------------------- parameter names in errors
@pytest.mark.parametrize("every", ["two", 2.5, None, True])
def test_observe_every_of_the_wrong_type_names_the_parameter(l96_truth, every):
    with pytest.raises(TypeError, match=r"observe: every must be an integer"):
        observe(l96_truth, "identity", every=every)


@pytest.mark.parametrize("spec", ["everyX", "every", "every0", "every-2", "every2.5"])
def test_bad_every_k_spec_names_the_operator_spec(l96_truth, spec):
    with pytest.raises(ValueError, match=rf"operator {spec!r}: 'every<k>' needs a whole number"):
        observe(l96_truth, spec)


# ------------------------------------------------- custom operators are registered
class SitePair(ObservationOperator):
    """Observe two flat components (module level: picklable)."""

    def __init__(self, first=0, last=-1):
        self.first = first
        self.last = last

    def indices(self, layout):
        n = sum(v.size for v in layout)
        return np.array([self.first % n, self.last % n])


class SquaredPair(ObservationOperator):
    """A nonlinear custom operator wrapping another operator."""

    linear = False

    def __init__(self, base=None):
        self.base = base

    def indices(self, layout):
        return (self.base or SitePair()).indices(layout)

    def _transform(self, z):
        return z**2


def test_custom_operator_is_rebuilt_from_observation_attrs(l96_truth):
    op = SitePair(first=3, last=-2)
    obs = observe(l96_truth, op, noise_std=0.5, random_state=0)
    rebuilt = operator_from_spec(obs.attrs["operator"])
    assert type(rebuilt) is SitePair and rebuilt.get_params() == {"first": 3, "last": -2}
    np.testing.assert_array_equal(obs.state_index.values, [3, 38])
    # nested custom operators too
    nested = operator_from_spec(SquaredPair(base=SitePair(1, 2)).spec())
    assert type(nested.base) is SitePair and nested.base.last == 2
    x = torch.arange(40.0)
    np.testing.assert_array_equal(nested.apply(x, Lorenz96(n=40)).numpy(), [1.0, 4.0])


def test_custom_operator_pickles_and_clones(l96_truth):
    import pickle

    from sklearn.base import clone

    op = SquaredPair(base=SitePair(5, 6))
    for copy in (pickle.loads(pickle.dumps(op)), clone(op)):
        assert copy.spec() == op.spec()
        np.testing.assert_array_equal(copy.indices(Lorenz96(n=40).variables), [5, 6])


def test_unknown_operator_error_says_how_to_register():
    with pytest.raises(ValueError, match=r"unknown observation operator 'Nowhere'.*defined or imported"):
        operator_from_spec('{"operator": "Nowhere"}')
    with pytest.raises(ValueError, match="not JSON"):
        operator_from_spec("{operator")
    with pytest.raises(ValueError, match="cannot rebuild observation operator 'SitePair'"):
        operator_from_spec({"operator": "SitePair", "nope": 1})


def test_a_different_class_taking_a_registered_name_warns(monkeypatch):
    from xdyn.observe import OPERATORS, registered_operators

    original = registered_operators()["SitePair"]
    # the test module's class comes back for the other tests when this one ends
    monkeypatch.setattr(OPERATORS, "_unnamed", dict(OPERATORS._unnamed))
    with pytest.warns(UserWarning, match="'SitePair'.*replaces"):
        other = type("SitePair", (ObservationOperator,), {"__module__": "elsewhere"})
    assert registered_operators()["SitePair"] is other is not original
    assert type(operator_from_spec('{"operator": "SitePair"}')) is other


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"noise_std": "a"}, TypeError, "observe: noise_std must be a number"),
        ({"missing_fraction": "x"}, TypeError, "observe: missing_fraction must be a number"),
        ({"operator": EveryKth(k="two")}, TypeError, "EveryKth: k must be an integer"),
        ({"operator": EveryKth(k=2, offset=-1)}, ValueError, "EveryKth: offset must be an integer >= 0"),
        ({"operator": EveryKth(k=2, offset=99)}, ValueError, "observes nothing"),
        ({"operator": RandomPoints(n_points=0)}, ValueError, "RandomPoints: n_points must be an integer >= 1"),
        ({"operator": RandomPoints(n_points=2.5)}, TypeError, "RandomPoints: n_points must be an integer"),
        ({"times": [0.05, 99.0]}, ValueError, "observe: some of times are not times of the Dataset"),
    ],
)
def test_observe_parameter_errors_name_the_parameter(l96_truth, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        observe(l96_truth, **({"operator": "identity"} | kwargs))


def test_variables_without_time_are_parameters_not_observed():
    truth = Lorenz96(n=8).simulate(n_steps=5, random_state=0).expand_dims(trajectory=2)
    truth["F"] = ("trajectory", [8.0, 9.0])  # a per-trajectory parameter
    obs = observe(truth, "identity", noise_std=0.0, random_state=0)
    assert obs.sizes["obs"] == 8
    np.testing.assert_array_equal(obs.observation_clean.transpose("trajectory", "time", "obs"),
                                  truth.x.transpose("trajectory", "time", "k"))


def test_arctan_operator_round_trips_with_an_exact_jacobian():
    """arctan(every 4th site): spec round trip, Jacobian 1/(1+x^2), clean observations
    arctan(truth). (Gaussian filters fail on it, as Bao et al. 2024 report: EnKF-30 on
    Lorenz-96 with arctan of every site at noise 0.1 measured RMSE 0.91-1.08 of the
    climatological spread over 3 seeds; that is the score filters' case.)"""
    import torch

    from xdyn.observe import Arctan, make_operator

    op = make_operator("arctan(every4)")
    assert type(op) is Arctan and op.base.get_params()["k"] == 4
    again = operator_from_spec(op.spec())
    assert type(again) is Arctan and again.base.get_params() == op.base.get_params()
    system = Lorenz96(n=8)
    x = torch.linspace(-3, 3, 8, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: op.apply(z, system), x)
    expected = torch.zeros(2, 8, dtype=torch.float64)
    expected[0, 0], expected[1, 4] = 1 / (1 + x[0] ** 2), 1 / (1 + x[4] ** 2)
    torch.testing.assert_close(jac, expected, rtol=1e-12, atol=0)
    truth = Lorenz96(n=40).simulate(n_steps=20, random_state=0)
    obs = observe(truth, "arctan", noise_std=0.1, random_state=1)
    np.testing.assert_allclose(obs.observation_clean.values, np.arctan(truth.x.values), rtol=1e-12)


def test_every_kth_refuses_a_named_variable_without_its_dim():
    # it was left out without a word (GridPoints observes such a variable whole)
    ds = xr.Dataset({"s": ("time", np.zeros(3)), "u": (("time", "x"), np.zeros((3, 6)))},
                    coords={"time": np.arange(3.0)})
    with pytest.raises(ValueError, match=r"\['s'\] have no dim"):
        observe(ds, EveryKth(k=2, variables=["s", "u"]), noise_std=0.0)
    with pytest.raises(ValueError, match=r"\['u'\] have no dim 'y'"):
        observe(ds, EveryKth(k=2, dim="y", variables="u"), noise_std=0.0)
    obs = observe(ds, EveryKth(k=2), noise_std=0.0)  # unnamed: the variables with a dim
    assert set(obs.variable.values) == {"u"} and obs.sizes["obs"] == 3


def test_grid_points_subsample_every_spatial_dim():
    from xdyn.observe import GridPoints
    from xdyn.systems import KolmogorovFlow

    system = KolmogorovFlow(N=32)
    truth = system.simulate(n_steps=1, random_state=0)
    obs = observe(truth, GridPoints(stride=8, offset=2), noise_std=0.0, random_state=0)
    assert obs.sizes["obs"] == 16
    w = truth.vorticity.isel(time=0).values
    np.testing.assert_allclose(obs.observation_clean.isel(time=0).values, w[2::8, 2::8].ravel())
    again = operator_from_spec(GridPoints(stride=8, offset=2).spec())
    assert again.get_params() == {"stride": 8, "offset": 2, "variables": None}
    with pytest.raises(ValueError, match="stride"):
        GridPoints(stride=0).n_obs(system)


def test_nested_nonlinear_operators_compose():
    # the outer function used to read the inner operator's sites only: Squared(Arctan())
    # observed x**2, not arctan(x)**2 (and "x^2" under arctan lost its square)
    import torch

    from xdyn.observe import Arctan, Squared

    system = Lorenz96(n=8)
    x = torch.linspace(-3, 3, 8, dtype=torch.float64)
    torch.testing.assert_close(Squared(Arctan()).apply(x, system), torch.arctan(x) ** 2)
    torch.testing.assert_close(Arctan(Squared(EveryKth(k=4))).apply(x, system),
                               torch.arctan(x[[0, 4]] ** 2))
    spec = Squared(Arctan()).spec()
    torch.testing.assert_close(operator_from_spec(spec).apply(x, system), torch.arctan(x) ** 2)


# --------------------------------------------------------------------- units
@pytest.mark.parametrize("operator, units", [
    ("identity", "m s-1"), ("every4", "m s-1"), ("x^2", "m2 s-2"), ("arctan", "1"),
    ("arctan(x^2)", "1"), (Squared(Arctan()), "1")])
def test_observation_units_follow_the_operator(l96_truth, operator, units):
    truth = l96_truth.assign(x=l96_truth.x.assign_attrs(units="m s-1"))
    obs = observe(truth, operator, noise_std=0.1, random_state=0)
    for name in ("observation", "observation_clean", "noise_std"):
        assert obs[name].attrs["units"] == units


@pytest.mark.parametrize("units, squared", [
    ("dimensionless", "1"), ("unitless", "1"), ("1", "1"), ("mixed", "mixed"), (None, None),
    ("K", "K2"), ("kelvin", "K2"), ("m/s", "m2 s-2"), ("kg kg**-1", "(kg kg**-1)^2"), ("", ""),
    ("hours since 2000-01-01", "(hours since 2000-01-01)^2")])
def test_squared_reads_dimensionless_as_units(units, squared):
    """The square of dimensionless observations was 'dimensionless^2' (units compared as
    strings); any spelling of dimensionless now squares to "1", and every square is
    spelled as metrics.energy_spectrum spells it (xdyn._units.power_units)."""
    assert Squared().obs_units(units) == squared
    assert Squared(SelectVariables("x")).obs_units(units) == squared


@pytest.mark.parametrize("units", ["dimensionless", "1"])
def test_observation_units_of_squared_dimensionless_data(l96_truth, units):
    truth = l96_truth.assign(x=l96_truth.x.assign_attrs(units=units))
    obs = observe(truth, "x^2", noise_std=0.1, random_state=0)
    for name in ("observation", "observation_clean", "noise_std"):
        assert obs[name].attrs["units"] == "1"


class CubedWithoutUnits(ObservationOperator):
    linear = False

    def indices(self, layout):
        return np.arange(2)

    def _transform(self, z):
        return z**3


def test_observation_units_unknown_or_of_the_observed_variables(l63_truth):
    truth = l63_truth.assign(x=l63_truth.x.assign_attrs(units="m"),
                             z=l63_truth.z.assign_attrs(units="K"))
    # a nonlinear operator that does not say what it does to units: no units attr
    obs = observe(truth, CubedWithoutUnits(), noise_std=0.1, random_state=0)
    assert "units" not in obs.observation.attrs and "units" not in obs.noise_std.attrs
    # the units are those of the variables observed, not of the whole state
    assert observe(truth, "x", random_state=0).observation.attrs["units"] == "m"
    assert observe(truth, ["x", "z"], random_state=0).observation.attrs["units"] == "mixed"


@pytest.mark.parametrize("x_units, z_units, units", [
    ("K", "kelvin", "K"), ("kelvin", "K", "kelvin"),  # one unit: the first variable's spelling
    ("hPa", "millibars", "hPa"), ("m s-1", "m/s", "m s-1"),
    ("", None, "1"), ("  ", "1", "1"),  # no units stated (blank, no attr): dimensionless
    ("K", None, "mixed"), ("K", "degC", "mixed"), ("", "K", "mixed")])
def test_observation_units_compared_as_units(l63_truth, x_units, z_units, units):
    """Spellings of one unit are common units; a blank units attr states none."""
    truth = l63_truth.assign(x=l63_truth.x.copy(), z=l63_truth.z.copy())
    for name, value in (("x", x_units), ("z", z_units)):
        truth[name].attrs.pop("units")
        if value is not None:
            truth[name].attrs["units"] = value
    obs = observe(truth, ["x", "z"], random_state=0)
    for name in ("observation", "observation_clean", "noise_std"):
        assert obs[name].attrs["units"] == units


@pytest.mark.parametrize("operator, expected", [
    (EveryKth(k=np.int64(3)), [0, 3, 6, 9]),
    (SelectVariables(np.array(["x"])), [0]),
])
def test_specs_of_numpy_valued_operators_rebuild_them(operator, expected):
    # spec() wrote numpy values with str(): k=np.int64(3) as "3" and an array of names as
    # "['x']", which operator_from_spec could not rebuild (assimilators rebuild from attrs)
    spec = json.loads(operator.spec())
    assert not any(isinstance(v, str) and v.startswith(("[", "3")) for v in spec.values())
    system = Lorenz96(n=10) if isinstance(operator, EveryKth) else Lorenz63()
    rebuilt = operator_from_spec(operator.spec())
    assert rebuilt.indices(system.variables).tolist() == expected


def test_specs_written_before_plain_json_are_read_back_with_a_warning():
    # attrs written before plain() stored k=np.int64(3) as "3" and names as "['x']": an
    # assimilator rebuilding the operator from such a file failed with "k must be an integer"
    old = {"EveryKth": ('{"operator": "EveryKth", "k": "3", "offset": "1", "dim": null}',
                        Lorenz96(n=10), [1, 4, 7]),
           "SelectVariables": ('{"operator": "SelectVariables", "variables": "[\'x\', \'z\']"}',
                               Lorenz63(), [0, 2])}
    for spec, system, expected in old.values():
        with pytest.warns(UserWarning, match="older xdyn"):
            rebuilt = operator_from_spec(spec)
        assert rebuilt.indices(system.variables).tolist() == expected
    # a string that is a name, not a number, is kept as it is, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert operator_from_spec('{"operator": "SelectVariables", "variables": "x"}'
                                  ).variables == "x"
