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
    # the ensemble / trajectory dims are reduced to their first entry
    fig = plot_state(l96.expand_dims(member=3))
    assert len(_panels(fig)) == 1


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
