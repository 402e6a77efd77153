"""kolmogorov-closure: the closures' symmetry-augmented training pairs and their calibration."""

import numpy as np
import pytest
import xarray as xr

from xdyn.experiments._kolmogorov_symmetry import _closure_training_pairs, _symmetry_image


def _fields(n_traj=2, n_time=6, n=8, seed=0):
    rng = np.random.RandomState(seed)
    dims = ("trajectory", "time", "y", "x")
    return xr.Dataset({k: (dims, rng.normal(size=(n_traj, n_time, n, n))) for k in ("u", "v")})


def test_training_pairs_are_exact_images_in_random_order():
    ds = _fields()
    n_copies, n_shifts = 8, 4
    res, unres = _closure_training_pairs(ds, -ds, n_copies, n_shifts, 60, random_state=1)
    assert res.sizes == {"time": 60, "y": 8, "x": 8}
    np.testing.assert_array_equal(unres.u, -res.u)  # the pairs stay pairs
    # every drawn sample is one group element applied to one training snapshot
    images = {}
    for k in range(n_copies):
        for j in range(n_shifts):
            for t in range(2):
                for s in range(6):
                    images[(k, j, t, s)] = _symmetry_image(
                        ds.isel(trajectory=t, time=s), k, x_shift=2 * j)
    found = []
    for i in range(60):
        hits = [key for key, im in images.items()
                if np.allclose(im.u, res.u[i]) and np.allclose(im.v, res.v[i])]
        assert len(hits) == 1
        found.append(hits[0])
    assert len(set(found)) == 60  # drawn without replacement
    groups = [8 * k + j for k, j, _, _ in found]
    # a random order, not grouped: the first samples (the GP's subset) span many groups
    assert len(set(groups[:15])) >= 8 and groups != sorted(groups)
    with pytest.raises(ValueError, match="divisible"):
        _closure_training_pairs(_fields(n=6), _fields(n=6), 8, 2, 10)


def test_closure_spread_scale_calibrates_on_the_given_trajectory():
    from xdyn.closure import GPClosure
    from xdyn.experiments._kolmogorov_forecast import _full_field
    from xdyn.experiments._kolmogorov_forecast import _closure_spread_scale

    n, grid = 300, np.arange(4.0)

    def pair(seed):
        r = np.random.RandomState(seed)
        a = r.uniform(-2, 2, (n, 1, 1))
        res = xr.Dataset({"u": (("time", "y", "x"), a * np.ones((n, 4, 4))),
                          "v": (("time", "y", "x"), -a * np.ones((n, 4, 4)))},
                         coords={"y": grid, "x": grid})
        noise = 0.3 * r.normal(size=(n, 4, 4))
        return res, np.sin(res) + xr.Dataset({"u": res.u * 0 + noise, "v": res.v * 0 - noise})

    (res, unres), (res_c, unres_c) = pair(1), pair(2)
    gp = GPClosure(1, 2, max_epochs=30, spread_scale=0.25, random_state=0).fit(res, unres)

    def coverage(closure):
        mean, std = closure.predict(res_c, return_std=True)
        return float((np.abs(_full_field(unres_c) - _full_field(mean))
                      <= _full_field(std)).mean())

    assert coverage(gp) < 0.4
    gp.set_params(spread_scale=_closure_spread_scale(gp, res_c, unres_c))
    assert abs(coverage(gp) - 0.683) < 0.01
