"""LowPassFilter's energy cutoff (arXiv 2510.24583): exact on known spectra, learned in fit."""

import pickle

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xdyn.preprocessing import LowPassFilter, split_scales

N = 32
X1 = 2 * np.pi * np.arange(N) / N


def _field(amplitudes, n_time=3, seed=0):
    """Sum of plane waves cos(m x + phase) along x, one per mode m, random phases in time."""
    rng = np.random.default_rng(seed)
    values = np.zeros((n_time, N, N))
    for m, a in amplitudes.items():
        phase = rng.uniform(0, 2 * np.pi, n_time)[:, None, None]
        values += a * np.cos(m * X1[None, None, :] + phase)
    return xr.Dataset({"u": (("time", "y", "x"), values)}, coords={"time": np.arange(n_time)})


@pytest.mark.parametrize("percent, expected", [(50, 1.0), (60, 3.0), (85, 3.0), (90, 7.0),
                                               (99, 7.0)])
def test_energy_rule_on_known_spectrum(percent, expected):
    # energy shares 0.5 (m=1), 0.35 (m=3), 0.15 (m=7)
    ds = _field({1: np.sqrt(0.5), 3: np.sqrt(0.35), 7: np.sqrt(0.15)})
    lp = LowPassFilter(f"energy{percent}").fit(ds)
    assert lp.cutoff_ == expected
    np.testing.assert_allclose(lp.energy_spectrum_.sel(wavenumber=[1, 3, 7]), [0.5, 0.35, 0.15],
                               rtol=1e-10)
    assert float(lp.cumulative_energy_[-1]) == pytest.approx(1.0)


def test_energy_rule_on_isotropic_power_law():
    # random phases with |f_hat|^2 ~ k^-3 over 1 <= |k| <= 15: the cutoff is where the
    # analytic cumulative fraction first reaches 0.9
    rng = np.random.default_rng(1)
    ky = np.fft.fftfreq(N, 1 / N)[:, None]
    kx = np.fft.fftfreq(N, 1 / N)[None, :]
    k = np.hypot(kx, ky)
    amp = np.where((k >= 1) & (k <= 15), np.maximum(k, 1) ** -1.5, 0.0)
    fields = [np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.random((N, N)))))
              for _ in range(4)]
    ds = xr.Dataset({"u": (("time", "y", "x"), np.stack(fields))})
    lp = LowPassFilter("energy90").fit(ds)
    power = np.abs(np.fft.rfft2(np.stack(fields))) ** 2
    kr = np.hypot(np.fft.fftfreq(N, 1 / N)[:, None], np.fft.rfftfreq(N, 1 / N)[None, :])
    weight = np.full(kr.shape, 2.0)  # rfft keeps one of each +-k_x pair but k_x = 0, N/2
    weight[:, [0, -1]] = 1.0
    total = (power * weight).sum()
    kept = lambda c: (power * weight * (kr <= c)).sum() / total  # noqa: E731
    assert kept(lp.cutoff_) >= 0.9 > kept(lp.cutoff_ - 1)
    # the filtered field keeps exactly that energy
    resolved = lp.transform(ds)
    ratio = float((resolved.u**2).sum() / (ds.u**2).sum())
    assert ratio == pytest.approx(kept(lp.cutoff_), rel=1e-10)


def test_exact_on_known_modes_and_projection():
    ds = _field({2: 1.0, 5: 0.5, 9: 0.25})
    resolved, unresolved = split_scales(ds, cutoff=5)
    expected = _field({2: 1.0, 5: 0.5})
    np.testing.assert_allclose(resolved.u, expected.u, atol=1e-12)
    np.testing.assert_allclose(unresolved.u, ds.u - expected.u, atol=1e-12)
    assert float((unresolved.u**2).mean()) == pytest.approx(0.25**2 / 2)
    twice = LowPassFilter(5).transform(resolved)
    np.testing.assert_allclose(twice.u, resolved.u, atol=1e-12)


def test_learned_on_training_data_only():
    train = _field({1: 1.0, 6: 1.0})          # 50/50: energy90 needs mode 6
    held_out = _field({1: 1.0, 6: 0.01})
    resolved, _ = split_scales(held_out, cutoff="energy90", fit_on=train)
    np.testing.assert_allclose(resolved.u, held_out.u, atol=1e-12)  # cutoff 6 keeps both
    resolved, _ = split_scales(held_out, cutoff="energy90")
    np.testing.assert_allclose(resolved.u, _field({1: 1.0}).u, atol=1e-12)


def test_physical_lengths_and_velocity_pair():
    # on a box of side 4 pi, mode m has k = m / 2; (u, v) count together
    ds = _field({2: 1.0, 8: 1.0})
    ds["v"] = ds.u * 0.0
    lp = LowPassFilter("energy40", lengths=4 * np.pi).fit(ds)
    assert lp.cutoff_ == 1.0
    assert LowPassFilter("energy60", lengths=4 * np.pi).fit(ds).cutoff_ == 4.0


def test_unfitted_clone_pickle_and_bad_values():
    ds = _field({1: 1.0, 4: 1.0})
    lp = LowPassFilter("energy90")
    with pytest.raises(NotFittedError):
        lp.transform(ds)
    fitted = pickle.loads(pickle.dumps(lp.fit(ds)))
    assert fitted.cutoff_ == 4.0
    assert clone(fitted).get_params()["cutoff"] == "energy90"
    assert LowPassFilter(3.0).fit(ds).cutoff_ == 3.0
    for bad in ("energy", "energy0", "energy150", "power90"):
        with pytest.raises(ValueError, match="energyXX"):
            LowPassFilter(bad).fit(ds)
    bad = ds.copy(deep=True)
    bad.u[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="'u'"):
        LowPassFilter("energy90").fit(bad)
    with pytest.raises(ValueError, match="no energy"):
        LowPassFilter("energy90").fit(ds * 0.0)


def test_accessor_lowpass():
    import xdyn  # noqa: F401  (registers the accessor)

    ds = _field({2: 1.0, 9: 1.0})
    np.testing.assert_allclose(ds.xdyn.lowpass(5).u, _field({2: 1.0}).u, atol=1e-12)
    np.testing.assert_allclose(ds.xdyn.lowpass("energy40").u, _field({2: 1.0}).u, atol=1e-12)
    np.testing.assert_allclose(ds.u.xdyn.lowpass(5), _field({2: 1.0}).u, atol=1e-12)


def test_the_learned_cutoff_keeps_the_modes_its_energy_counted():
    # on a box of length 3 the (5, 12) mode's |k| rounds a few ulp above the shell edge 13 dk
    # the rule learned: the mask dropped it, keeping 1% of the energy the rule counted as 100%
    n, length = 32, 3.0
    k0 = 2 * np.pi / length
    y, x = np.meshgrid(length * np.arange(n) / n, length * np.arange(n) / n, indexing="ij")
    da = xr.DataArray(np.cos(k0 * (5 * y + 12 * x)) + 0.1 * np.cos(k0 * x), dims=("y", "x"))
    lp = LowPassFilter("energy90", lengths=length).fit(da)
    assert lp.cutoff_ == pytest.approx(13 * k0)
    energy = float((da**2).sum())
    assert float((lp.transform(da) ** 2).sum()) == pytest.approx(energy, rel=1e-12)
    resolved, _ = split_scales(da, cutoff=13 * k0, lengths=length)
    assert float((resolved**2).sum()) == pytest.approx(energy, rel=1e-12)


def test_a_numeric_refit_drops_the_energy_rule_spectra():
    # the spectra exist only with cutoff="energyXX": a refit with a number left the old ones
    ds = _field({1: 1.0, 3: 1.0})
    lp = LowPassFilter("energy90").fit(ds)
    assert hasattr(lp, "energy_spectrum_")
    lp.set_params(cutoff=2.0).fit(ds)
    assert lp.cutoff_ == 2.0
    assert not hasattr(lp, "energy_spectrum_") and not hasattr(lp, "cumulative_energy_")
