"""LatentTransformerROM: learns on tiny data, beats persistence, composes, clones, refuses bad input."""

import pickle

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from xdyn.preprocessing import LowPassFilter
from xdyn.rom import LatentTransformerROM

N = 8
GRID = 2 * np.pi * np.arange(N) / N


def _waves(n_traj=3, n_time=80, dt=0.5, seed=0, noise=0.0):
    """Travelling waves of random phases: a smooth nonlinear-in-state but predictable flow."""
    rng = np.random.default_rng(seed)
    t = dt * np.arange(n_time)
    phase = rng.uniform(0, 2 * np.pi, (n_traj, 1, 1, 1))
    amp = rng.uniform(0.8, 1.2, (n_traj, 1, 1, 1))
    x, y = GRID[None, None, None, :], GRID[None, None, :, None]
    tt = t[None, :, None, None]
    u = amp * np.sin(x - 0.6 * tt + phase) * np.cos(y) + 0.3 * np.cos(2 * y)
    v = amp * np.cos(x - 0.6 * tt + phase) * np.sin(y)
    u = u + noise * rng.normal(size=u.shape)
    dims = ("trajectory", "time", "y", "x")
    return xr.Dataset({"u": (dims, u, {"units": "1"}), "v": (dims, v, {"units": "1"})},
                      coords={"time": ("time", t, {"units": "1"}), "y": GRID, "x": GRID},
                      attrs={"system": "waves"})


def _rom(**kw):
    params = dict(n_latent=4, seq_len=4, pred_horizon=2, hidden=32, architecture="mlp",
                  d_model=16, n_heads=4, max_epochs=25, lr=3e-3, batch_size=32, random_state=0)
    return LatentTransformerROM(**{**params, **kw})


@pytest.fixture(scope="module")
def fitted():
    return _rom().fit(_waves())


def _epoch_mean(history, key):
    return [np.mean([batch[key] for batch in epoch["batches"]]) for epoch in history]


def test_loss_falls_and_forecast_beats_persistence(fitted):
    # the total mixes a reconstruction and a latent NLL whose scale moves as the latents
    # spread: each term is checked instead
    reconstruction = _epoch_mean(fitted.net_.history, "reconstruction")
    latent_error = _epoch_mean(fitted.net_.history, "latent_error")
    assert reconstruction[-1] < 0.35 * reconstruction[0]
    assert latent_error[-1] < 0.2  # predicted latent means explain > 80 % of the variance
    test = _waves(n_traj=4, seed=7)
    n_steps, start = 4, 40
    context = test.isel(time=slice(start - 4, start))
    truth = test.isel(time=slice(start, start + n_steps))
    forecast = fitted.predict(context, n_steps=n_steps)
    assert forecast.u.dims == ("trajectory", "time", "y", "x")
    np.testing.assert_allclose(forecast.time, truth.time)
    err = float(((forecast - truth) ** 2).to_array().mean())
    persistence = float(((test.isel(time=start - 1, drop=True) - truth) ** 2).to_array().mean())
    assert err < 0.3 * persistence


def test_transform_inverse_and_stochastic_members(fitted):
    test = _waves(n_traj=2, seed=3)
    z = fitted.transform(test)
    assert z.z.dims == ("trajectory", "time", "latent") and z.sizes["latent"] == 4
    back = fitted.inverse_transform(z)
    assert back.u.attrs == {"units": "1"} and back.attrs["system"] == "waves"
    rel = float(np.sqrt(((back - test) ** 2).to_array().sum() / (test**2).to_array().sum()))
    assert rel < 0.2
    ens = fitted.predict(test, n_steps=5, n_samples=6)
    assert ens.u.dims == ("member", "trajectory", "time", "y", "x")
    assert float(ens.u.std("member").mean()) > 0
    again = fitted.predict(test, n_steps=5, n_samples=6)
    xr.testing.assert_equal(ens, again)  # seeded by random_state


def test_clone_pickle_same_seed():
    data = _waves(n_traj=2, n_time=30)
    a = _rom(max_epochs=3).fit(data)
    b = pickle.loads(pickle.dumps(a))
    xr.testing.assert_allclose(a.predict(data, n_steps=3), b.predict(data, n_steps=3))
    c = clone(a)
    assert c.get_params() == a.get_params() and not hasattr(c, "net_")
    xr.testing.assert_allclose(c.fit(data).predict(data, n_steps=3), a.predict(data, n_steps=3))


def test_pipeline_with_lowpass_filter():
    data = _waves(n_traj=2, n_time=30)
    pipe = Pipeline([("filter", LowPassFilter("energy90")),
                     ("rom", _rom(max_epochs=2))]).fit(data)
    forecast = pipe.predict(data, n_steps=3, n_samples=2)
    assert forecast.u.sizes == {"member": 2, "trajectory": 2, "time": 3, "y": N, "x": N}
    assert pipe.named_steps["filter"].cutoff_ > 0


def test_numpy_matrix_path():
    matrix = _waves(n_traj=1, n_time=30).u.values[0].reshape(30, -1)
    rom = _rom(max_epochs=2, architecture="auto").fit(matrix)
    assert rom.in_shape_ == (N * N,)
    assert rom.transform(matrix).shape == (30, 4)
    assert rom.predict(matrix, n_steps=3).shape == (3, N * N)
    assert rom.predict(matrix, n_steps=3, n_samples=2).shape == (2, 3, N * N)


def test_bad_input():
    data = _waves(n_traj=1, n_time=30)
    with pytest.raises(NotFittedError):
        _rom().predict(data, n_steps=2)
    with pytest.raises(ValueError, match="seq_len \\+ pred_horizon"):
        _rom().fit(data.isel(time=slice(0, 5)))
    with pytest.raises(ValueError, match="sample dim 'step'"):
        _rom(sample_dim="step").fit(data)
    bad = data.copy(deep=True)
    bad.u[0, 3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _rom().fit(bad)
    with pytest.raises(ValueError, match="n_latent"):
        _rom(n_latent=0).fit(data)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        _rom(d_model=10).fit(data)
    with pytest.raises(ValueError, match="shift_augmentation"):
        _rom(shift_augmentation=True).fit(data.u.values[0].reshape(30, -1))
    rom = _rom(max_epochs=1).fit(data)
    with pytest.raises(ValueError, match="n_steps"):
        rom.predict(data, n_steps=0)
    with pytest.raises(ValueError, match="n_samples"):
        rom.predict(data, n_steps=2, n_samples=0)
    with pytest.raises(ValueError, match="at least seq_len"):
        rom.predict(data.isel(time=slice(0, 2)), n_steps=2)
    with pytest.raises(ValueError):
        rom.transform(data.isel(x=slice(0, 4)))
