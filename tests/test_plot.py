"""Diagnostic panels: state overviews, twin panels, score curves, spectra."""

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from xdyn.metrics import energy_spectrum
from xdyn.observe import observe
from xdyn.plot import plot_scores, plot_spectrum, plot_state, plot_twin
from xdyn.systems import Lorenz63, Lorenz96


@pytest.fixture(scope="module")
def l96():
    return Lorenz96(n=20).simulate(n_steps=40, random_state=0)


@pytest.fixture(scope="module")
def l63():
    return Lorenz63().simulate(n_steps=40, random_state=0)


def _field(n_time=3, n=8):
    rng = np.random.RandomState(0)
    return xr.Dataset(
        {"w": (("time", "y", "x"), rng.standard_normal((n_time, n, n)), {"units": "s-1"}),
         "h": (("time", "y", "x"), rng.standard_normal((n_time, n, n)), {"units": "m"})},
        coords={"time": np.arange(n_time) * 0.5, "y": np.arange(n) * 1.0, "x": np.arange(n) * 1.0})


def _panels(fig):
    return [a for a in fig.axes if a.get_label() != "<colorbar>"]


def _colorbars(fig):
    return [a for a in fig.axes if a.get_label() == "<colorbar>"]


def _lines(ax, label=None):
    return [ln for ln in ax.get_lines() if label is None or ln.get_label() == label]


# --------------------------------------------------------------------- plot_state
def test_plot_state_lorenz63_one_panel_of_scalars(l63):
    fig = plot_state(l63)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes  # one panel, no colorbar
    assert sorted(ln.get_label() for ln in ax.get_lines()) == ["x", "y", "z"]
    np.testing.assert_allclose(_lines(ax, "y")[0].get_ydata(), l63.y.values)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y", "z"]


def test_plot_state_lorenz96_hovmoller(l96):
    fig = plot_state(l96)
    assert len(_panels(fig)) == 1 and len(_colorbars(fig)) == 1
    ax = _panels(fig)[0]
    # labelled from the coordinates' long names: time along x, the sites along y
    assert "time" in ax.get_xlabel() and "site" in ax.get_ylabel()
    mesh = ax.collections[0]
    assert mesh.get_array().size == l96.sizes["time"] * l96.sizes["k"]
    # an ensemble is drawn as its mean, and the title says so
    rng = np.random.RandomState(0)
    ens = l96 + xr.DataArray(rng.standard_normal((3, l96.sizes["k"])), dims=("member", "k"))
    fig = plot_state(ens.transpose("time", "member", "k"))
    (ax,) = _panels(fig)
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).ravel(),
                               ens.x.mean("member").transpose("k", "time").values.ravel())
    assert "ensemble mean of 3 members" in ax.get_title()
    # of several trajectories the first is drawn, and the title says which
    both = xr.concat([l96, l96 + 1.0], dim="trajectory")
    (ax,) = _panels(plot_state(both))
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).ravel(),
                               l96.x.transpose("k", "time").values.ravel())
    assert "trajectory 0 of 2" in ax.get_title()


def test_plot_state_2d_field_maps():
    ds = _field()
    fig = plot_state(ds)
    assert len(_panels(fig)) == 2 and len(_colorbars(fig)) == 2
    ax = _panels(fig)[0]
    assert ax.get_xlabel().startswith("x") and ax.get_ylabel().startswith("y")
    # the last time by default ...
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).ravel(),
                               ds.w.isel(time=-1).values.ravel())
    # ... or the nearest to the time asked for
    fig = plot_state(ds, variables="w", time=0.4)
    (ax,) = _panels(fig)
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).ravel(),
                               ds.w.isel(time=1).values.ravel())


def test_plot_state_mixed_and_selected_variables(l96):
    ds = _field()
    ds["energy"] = ("time", (ds.w**2).mean(("y", "x")).values)
    fig = plot_state(ds)
    assert len(_panels(fig)) == 3  # scalars together, one panel per field
    assert len(_panels(plot_state(ds, variables=["h"]))) == 1
    # a single name is one variable, not its letters
    assert len(_panels(plot_state(ds, variables="energy"))) == 1
    # a DataArray works too
    assert len(_panels(plot_state(l96.x))) == 1


def test_plot_state_draws_on_a_given_figure(l63):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    assert plot_state(l63, fig=fig) is fig


# --------------------------------------------------------------------- plot_twin
def test_plot_twin_lorenz96(l96):
    obs = observe(l96, "every4", noise_std=1.0, random_state=0)
    rng = np.random.RandomState(1)
    ens = l96 + 0.3 * xr.DataArray(rng.standard_normal((5,) + l96.x.shape), dims=("member", "time", "k"))
    analyses = {"enkf": ens, "3dvar": l96 + 0.1}
    fig = plot_twin(l96, obs, analyses, site=4, background=ens.x + 0.5)
    (ax,) = fig.axes
    for name in ("enkf", "3dvar", "truth", "observations", "background"):
        assert len(_lines(ax, name)) == 1, name
    np.testing.assert_allclose(_lines(ax, "truth")[0].get_ydata(), l96.x.isel(k=4))
    np.testing.assert_allclose(_lines(ax, "enkf")[0].get_ydata(), ens.x.mean("member").isel(k=4))
    np.testing.assert_allclose(_lines(ax, "observations")[0].get_ydata(),
                               obs.observation.isel(obs=1))
    assert "site 4" in ax.get_title()
    # an unobserved site: no observation markers
    fig = plot_twin(l96, obs, {"enkf": ens}, site=1)
    assert not _lines(fig.axes[0], "observations") and len(_lines(fig.axes[0], "enkf")) == 1


def test_plot_twin_lorenz63(l63):
    obs = observe(l63, ["x", "y"], noise_std=1.0, every=5, random_state=0)
    fig = plot_twin(l63, obs, {"a": l63 + 0.2, "b": l63 - 0.2}, variable="y")
    (ax,) = fig.axes
    assert len(_lines(ax, "a")) == 1 and len(_lines(ax, "b")) == 1
    np.testing.assert_allclose(_lines(ax, "observations")[0].get_ydata(), obs.observation.isel(obs=1))
    assert ax.get_title() == "y"
    # default variable is the first one
    assert plot_twin(l63, obs, {}).axes[0].get_title() == "x"


# --------------------------------------------------------------------- plot_scores
def _scores(methods=("enkf", "letkf", "3dvar"), n_time=12):
    rng = np.random.RandomState(0)
    rmse = 0.2 + rng.uniform(size=(len(methods), n_time))
    spread = 0.2 + rng.uniform(size=(len(methods), n_time))
    spread[-1] = np.nan  # a deterministic method has no spread
    return xr.Dataset({"rmse": (("method", "time"), rmse), "spread": (("method", "time"), spread)},
                      coords={"method": list(methods), "time": 0.05 * np.arange(n_time)})


def test_plot_scores_one_line_per_method():
    scores = _scores()
    fig = plot_scores(scores)
    (ax,) = fig.axes
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_label() for ln in solid] == ["enkf", "letkf", "3dvar"]
    assert len(dashed) == 2  # no spread line for the method without one
    for i, ln in enumerate(solid):
        np.testing.assert_allclose(ln.get_ydata(), scores.rmse.isel(method=i))
        assert ln.get_color() == dashed[i].get_color() if i < 2 else True
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["enkf", "letkf", "3dvar"]


def test_plot_scores_time_first_and_without_spread():
    scores = _scores(("a", "b")).transpose("time", "method")
    (ax,) = plot_scores(scores).axes
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    np.testing.assert_allclose(solid[1].get_ydata(), scores.rmse.sel({"method": "b"}))  # sel(method=) is the lookup method
    (ax,) = plot_scores(scores.drop_vars("spread")).axes
    assert len(ax.get_lines()) == 2


# --------------------------------------------------------------------- plot_spectrum
def test_plot_spectrum(l96):
    spec = energy_spectrum(l96.x, dim="k", mean_dims="time")
    fig = plot_spectrum(spec, label="L96")
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), spec.wavenumber[1:])  # k = 0 left out of log axes
    np.testing.assert_allclose(line.get_ydata(), spec[1:])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_legend() is not None and line.get_label() == "L96"
    # overlay on given axes
    assert plot_spectrum(0.5 * spec, ax=ax, label="half") is fig
    assert len(ax.get_lines()) == 2


def test_save_figure_to_png(tmp_path, l96):
    path = tmp_path / "state.png"
    plot_state(l96).savefig(path, dpi=50)
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_does_not_change_the_backend():
    import importlib

    import matplotlib

    import xdyn.plot

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        importlib.reload(xdyn.plot)  # re-runs the module's import-time code
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


# --------------------------------------------------------------------- what is drawn, and how
def _overlap(fig, a, b):
    """Whether two artists' boxes on the drawn figure intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))


def test_plot_observations(l96):
    obs = observe(l96, "every4", noise_std=1.0, random_state=0)
    fig = obs.xdyn.plot()  # used to fail: Line2D.set() got an unexpected keyword argument 'cmap'
    (ax,) = _panels(fig)
    assert ax.collections[0].get_array().size == obs.observation.size
    # the noise level is a profile over the observations: a line, not a colour map
    (ax,) = _panels(plot_state(obs, variables="noise_std"))
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), obs.noise_std.values)


def test_plot_state_ensemble_of_scalars_shows_mean_and_band(l63):
    rng = np.random.RandomState(0)
    offsets = xr.DataArray(rng.standard_normal(4), dims="member")
    ens = l63 + offsets
    (ax,) = plot_state(ens).axes
    assert sorted(ln.get_label() for ln in ax.get_lines()) == ["x", "y", "z"]
    np.testing.assert_allclose(_lines(ax, "x")[0].get_ydata(), ens.x.mean("member"))
    assert len(ax.collections) == 3  # one +-1 std band per variable
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    std = float(offsets.std(ddof=1))
    assert band.max() == pytest.approx(float((ens.x.mean("member") + std).max()))
    assert "ensemble mean of 4 members" in ax.get_title()


def test_plot_state_maps_are_square():
    fig = plot_state(_field(n=8))
    for ax in _panels(fig):
        assert ax.get_aspect() == 1.0


def _diverged_scores(n_time=1000):
    time = xr.DataArray(0.25 * np.arange(n_time), dims="time",
                        attrs={"long_name": "model time", "units": "1"})
    rng = np.random.RandomState(0)
    rmse = 0.5 + 0.1 * rng.uniform(size=(3, n_time))
    rmse[1, n_time // 2:] = np.nan  # diverged half-way
    rmse[2] = np.nan  # unavailable
    return xr.Dataset(
        {"rmse": (("assimilator", "time"), rmse, {"units": "1"}),
         "rmse_mean": ("assimilator", [0.55, np.nan, np.nan], {"units": "1"}),
         "divergence_time": ("assimilator", [np.nan, float(time[n_time // 2]), np.nan]),
         "status": ("assimilator", ["ok", "diverged: lost", "unavailable: no such method"])},
        coords={"assimilator": ["EnKF", "ExtKF", "PF"], "time": time})


def test_plot_scores_marks_divergence_smooths_and_keeps_the_legend_off_the_curves():
    res = _diverged_scores()
    fig = plot_scores(res)
    ax, bars = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["EnKF", "ExtKF (diverged at t=125)", "PF (unavailable)"]
    # an x where the diverged method stopped, at its last (smoothed) value
    (mark,) = [ln for ln in ax.get_lines() if ln.get_marker() == "x" and ln.get_label().startswith("_")]
    assert float(mark.get_xdata()[0]) == pytest.approx(124.75)
    # a long record is a running mean, and the title says over what
    assert "running mean over 25" in ax.get_title()
    smooth = res.rmse.isel(assimilator=0).rolling(time=25, center=True, min_periods=1).mean()
    np.testing.assert_allclose(_lines(ax, "EnKF")[0].get_ydata(), smooth)
    assert ax.get_xlabel() == "model time [1]" and "[1]" in ax.get_ylabel()
    assert not _overlap(fig, ax.get_legend(), ax)
    # the time averages as bars, labelled; no bar where there is no average
    assert [t.get_text() for t in bars.get_yticklabels()] == ["EnKF", "ExtKF", "PF"]
    assert [round(p.get_width(), 3) for p in bars.patches] == [0.55, 0.0, 0.0]
    assert any("diverged" in t.get_text() for t in bars.texts)


def test_plot_twin_legend_outside_and_time_units(l96):
    obs = observe(l96, "every4", noise_std=1.0, random_state=0)
    rng = np.random.RandomState(1)
    ens = l96 + 0.3 * xr.DataArray(rng.standard_normal((5,) + l96.x.shape), dims=("member", "time", "k"))
    fig = plot_twin(l96, obs, {"enkf": ens}, site=4)
    (ax,) = fig.axes
    assert not _overlap(fig, ax.get_legend(), ax)
    assert ax.get_xlabel() == "model time [1]"
    assert len(ax.collections) == 1  # the ensemble's +-1 std band


def test_plot_state_leaves_out_per_trajectory_parameters_and_names_them_when_asked():
    from xdyn.systems import DampedPendulum

    ds = DampedPendulum().simulate(n_trajectories=3, t_span=2.0, dt=0.1, random_state=0,
                                   parameter_ranges={"omega0": (0.5, 1.5)})
    assert "omega0" in ds.data_vars  # a parameter per trajectory, no time dim
    fig = plot_state(ds)  # was: "x and y must have same first dimension"
    assert {ln.get_label() for ln in _lines(_panels(fig)[0])} == {"theta", "omega"}
    with pytest.raises(ValueError, match=r"\['omega0'\] hold one number per trajectory"):
        plot_state(ds, variables=["theta", "omega0"])


def test_plot_twin_finds_the_observations_of_a_site_by_its_label(l96):
    # a subset of the sites: position 2 of the truth is site k=12
    part = l96.isel(k=slice(10, 20))
    obs = observe(part, "every2", noise_std=1.0, random_state=0)
    fig = plot_twin(part, obs, {"a": part + 0.1}, site=2)
    (line,) = _lines(fig.axes[0], "observations")
    np.testing.assert_allclose(line.get_ydata(),
                               obs.observation.isel(obs=int(np.flatnonzero(obs.k == 12)[0])))


def test_plot_spectrum_refuses_more_than_one_spectrum(l96):
    spec = energy_spectrum(l96.x, dim="k")  # one per time
    with pytest.raises(ValueError, match=r"one spectrum.*\('time', 'wavenumber'\)"):
        plot_spectrum(spec)
