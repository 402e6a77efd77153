"""Audit O (session 62): sample_dim of stack_samples and LowPassFilter is not silently ignored."""

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone

from xdyn.preprocessing import LowPassFilter
from xdyn.preprocessing.stacking import stack_samples


def _field():
    rng = np.random.RandomState(0)
    return xr.Dataset({"w": (("time", "y", "x"), rng.standard_normal((3, 8, 8)))},
                      coords={"time": [0.0, 1.0, 2.0]})


def test_stack_samples_refuses_a_sample_dim_that_contradicts_info():
    ds = xr.Dataset({"w": (("time", "x"), np.arange(15.0).reshape(3, 5))})
    _, info = stack_samples(ds)
    with pytest.raises(ValueError, match="sample_dim 'x' contradicts info"):
        stack_samples(ds, sample_dim="x", info=info)  # was stacked along time, silently
    same, _ = stack_samples(ds, sample_dim="time", info=info)
    assert same.dims == ("time", "feature")
    assert stack_samples(ds, info=info)[0].dims == ("time", "feature")
    along_x, info_x = stack_samples(ds, sample_dim="x")
    assert along_x.shape == (5, 3)
    assert stack_samples(ds, info=info_x)[0].dims == ("x", "feature")


def test_lowpass_sample_dim_must_be_a_dim_name():
    ds = _field()
    with pytest.raises(TypeError, match="sample_dim must be a dim name"):
        LowPassFilter(4, sample_dim=0).fit(ds)  # was accepted and ignored
    with pytest.raises(ValueError, match="cannot be a filtered dim"):
        LowPassFilter(4, sample_dim="x").fit(ds)
    # documented as unused by the filter: any dim name gives the same result
    a = LowPassFilter("energy90").fit(ds)
    b = clone(LowPassFilter("energy90", sample_dim="member")).fit(ds)
    assert a.cutoff_ == b.cutoff_
    xr.testing.assert_identical(a.transform(ds), b.transform(ds))
    assert b.get_params()["sample_dim"] == "member"
