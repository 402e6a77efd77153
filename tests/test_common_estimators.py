"""Common checks of xdyn's forecasters, reduced-order models and closures (DESIGN.md: Estimators).

The estimators are discovered from the ``__all__`` of :mod:`xdyn.forecast`,
:mod:`xdyn.rom` and :mod:`xdyn.closure` (classes deriving from scikit-learn's
``BaseEstimator``; the abstract ``Base*`` classes are left out), so that a new
one is checked too: :data:`CASES` gives each a configuration that fits in about
a second and says how to call it, and a class without an entry fails
``test_every_estimator_has_a_small_configuration``.

As for the assimilators (``tests/test_common.py``), scikit-learn's data-driven
checks feed bare ``(n_samples, n_features)`` matrices, which these estimators
take only partly (a forecaster needs lead times, a ROM trajectories, an LDNet
its parameters); the sklearn checks that need no data run on every class, and
xdyn's own checks below run on labelled data:

* ``predict``/``transform``/``sample`` before ``fit`` raise ``NotFittedError``;
  ``clone`` is unfitted with equal params;
* a pickled fitted estimator predicts the same; the same int ``random_state``
  fits and predicts the same twice;
* ``fit`` and ``predict`` leave their inputs unchanged, and the outputs keep
  the variables' ``units``;
* NaN in the training data, a fitted variable missing at predict, a required
  dim missing at fit or at predict raise an error that names the problem;
* dask-backed data fit and predict the same as numpy-backed data;
* every parameter is declared in ``_parameter_constraints`` and all but the
  class's leading positional ones are keyword-only.
"""

import copy
import inspect
import pickle
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

import xdyn.closure as closure
import xdyn.forecast as forecast
import xdyn.rom as rom
from xdyn.systems import DampedPendulum

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _public_estimators(module):
    """The estimator classes a module exports (``Base*``: abstract, nothing to fit)."""
    found = [getattr(module, name) for name in module.__all__]
    return [c for c in found if inspect.isclass(c) and issubclass(c, BaseEstimator)
            and not c.__name__.startswith("Base")]


ESTIMATORS = sorted({c for m in (forecast, rom, closure) for c in _public_estimators(m)},
                    key=lambda c: c.__name__)
IDS = [c.__name__ for c in ESTIMATORS]


# ------------------------------------------------------------------------------- tiny data
def _fields(seed=0, n_time=12):
    """Two travelling waves ``u``, ``v`` on a 4 x 8 grid, hourly model time, with CF attrs."""
    rng = np.random.default_rng(seed)
    t, y, x = np.arange(float(n_time)), np.arange(4), np.arange(8)
    phase = 2 * np.pi * (x[None, None] - 0.5 * t[:, None, None]) / 8 + rng.uniform(0, 6)
    shape = (n_time, 4, 8)
    u = np.sin(phase) * np.cos(np.pi * y[None, :, None] / 2) + 0.05 * rng.normal(size=shape)
    v = np.cos(phase) + 0.05 * rng.normal(size=shape)
    dims = ("time", "y", "x")
    return xr.Dataset(
        {"u": (dims, u, {"units": "m s-1"}),
         "v": (dims, v, {"units": "m s-1", "long_name": "northward wind"})},
        coords={"time": ("time", t, {"units": "h"}), "y": ("y", y, {"units": "m"}),
                "x": ("x", x, {"units": "m"})},
        attrs={"title": "common checks"})


def _trajectories(seed=0, n_time=12):
    return xr.concat([_fields(seed, n_time), _fields(seed + 7, n_time)], "trajectory")


def _pendulum(seed=0):
    return DampedPendulum().simulate(n_trajectories=3, t_span=1.0, dt=0.1, random_state=seed)


def _closure_data(seed=0, n=60):
    """Resolved ``w``, ``q`` on 12 points, unresolved ``w`` on 8 (a law of the resolved)."""
    rng = np.random.RandomState(seed)
    a = rng.uniform(-2, 2, (n, 2))
    A, B = np.random.RandomState(1).normal(size=(2, 2, 12)), np.random.RandomState(2).normal(
        size=(2, 8))
    f = np.stack([np.sin(2 * a[:, 0]), 0.5 * a[:, 0] * a[:, 1]], 1)
    time = ("time", 0.1 * np.arange(n), {"units": "s"})
    X = xr.Dataset({"w": (("time", "x"), a @ A[0], {"units": "s-1"}),
                    "q": (("time", "x"), np.tanh(a @ A[1]), {"units": "K"})},
                   coords={"time": time, "x": np.arange(12)}, attrs={"title": "resolved"})
    Y = xr.Dataset({"w": (("time", "k"), (f + 0.2 * rng.normal(size=f.shape)) @ B,
                          {"units": "s-1"})},
                   coords={"time": time, "k": np.arange(8)})
    return X, Y


def _small_scales(seed=0):
    """An unresolved part of :func:`_fields` (its variables and attrs, 0.1 u^2)."""
    return _fields(seed).map(lambda v: 0.1 * v**2, keep_attrs=True)


def _stress(seed=0):
    """A field ``tau = u v`` to regress on ``u``, ``v``."""
    ds = _fields(seed)
    return xr.Dataset({"tau": (ds.u * ds.v).assign_attrs(units="m2 s-2")})


def _ldnet_data(seed=0):
    """``u(x, t; a)``: a mode growing at the rate ``a`` of each trajectory (as test_ldnet)."""
    a = np.random.RandomState(seed).uniform(-2, 2, 4)
    t, x = np.arange(6.0), np.arange(8) / 8
    u = np.cos(2 * np.pi * x)[None, None] + a[:, None, None] * t[None, :, None] / 6 * np.sin(
        2 * np.pi * x)[None, None]
    return xr.Dataset({"u": (("trajectory", "time", "x"), u, {"units": "1"}),
                       "a": ("trajectory", a, {"units": "1"})}, coords={"time": t, "x": x})


# ----------------------------------------------------------------------- configurations
@dataclass
class Case:
    """How to check one estimator class on tiny data.

    make : () -> estimator, small and seeded (``random_state=0`` where it takes one).
    data : seed -> (fit arguments, predict input).
    calls : name -> f(estimator, X): the methods whose output is checked (the
        first is the prediction); each must raise NotFittedError before fit.
    variable : a variable of the predict input the fitted estimator reads.
    fit_dim, predict_dim : a dim the training data / the predict input needs.
    positional : the parameters that may be given by position.
    grid : a grid dim of the predict input (None: no gridded field is read there).
    unfitted : other methods, f(estimator, X), that raise NotFittedError before fit.
    """

    make: Callable
    data: Callable
    calls: dict
    variable: str = "v"
    fit_dim: str = "time"
    predict_dim: str = "x"
    positional: tuple = ()
    grid: str = "x"
    unfitted: dict = field(default_factory=dict)
    units_of: Callable = field(default=lambda args: args[0])  # Dataset whose units outputs keep


def _fc(make, data=None, leads=(1.0, 2.0), unfitted=(), **kw):
    data = data or (lambda s: ((_fields(s),), _fields(s + 1)))
    unfitted = {"lead_steps": lambda e, X: e.lead_steps(list(leads)),
                "valid_times": lambda e, X: e.valid_times(X.time.values, list(leads)),
                **dict(unfitted)}
    return Case(make, data, {"predict": lambda e, X: e.predict(X, list(leads)),
                             "score": lambda e, X: e.score(X, list(leads))},
                unfitted=unfitted, **kw)


def _pendulum_case(make, **kw):
    return _fc(make, lambda s: ((_pendulum(s),), _pendulum(s + 1)), leads=(0.1, 0.2),
               variable="omega", predict_dim="time", grid=None, **kw)


def _cl(make, **kw):
    return Case(make, lambda s: (_closure_data(s), _closure_data(s + 1)[0]),
                {"predict": lambda e, X: e.predict(X, return_std=True),
                 "sample": lambda e, X: e.sample(X, 2)},
                variable="q", units_of=lambda args: args[1],
                positional=("n_input_modes", "n_output_modes"), **kw)


TORCH = dict(device="cpu", random_state=0)
CASES = {
    "Persistence": _fc(lambda: forecast.Persistence()),
    "Climatology": _fc(lambda: forecast.Climatology()),
    "ClimODE": _fc(lambda: forecast.ClimODE(hidden=4, n_steps=1, max_epochs=1, n_members=2,
                                            **TORCH)),
    "TransportVGBDM": _fc(lambda: forecast.TransportVGBDM(
        hidden=4, z_dim=1, len_episode=2, encoder_hidden=4, max_epochs=1, n_members=2, **TORCH)),
    "NeuralODE": _fc(lambda: forecast.NeuralODE(hidden=4, n_layers=1, window=3, max_epochs=1,
                                                **TORCH),
                     lambda s: ((_trajectories(s),), _trajectories(s + 1))),
    "VGBDM": _pendulum_case(lambda: forecast.VGBDM(
        "pendulum", z_dim=1, len_episode=3, hidden=4, encoder_hidden=4, max_epochs=1,
        n_members=2, **TORCH), positional=("physics",),
        unfitted={"infer_parameters": lambda e, X: e.infer_parameters(X)}),
    "POD": Case(lambda: rom.POD(2), lambda s: ((_trajectories(s),), _trajectories(s + 1)),
                {"inverse_transform": lambda e, X: e.inverse_transform(e.transform(X)),
                 "transform": lambda e, X: e.transform(X)}, positional=("n_modes",)),
    "PODLinearDynamics": Case(
        lambda: rom.PODLinearDynamics(2), lambda s: ((_trajectories(s),), _trajectories(s + 1)),
        {"predict": lambda e, X: e.predict(X, n_steps=2),
         "transform": lambda e, X: e.transform(X)},
        positional=("n_modes",),
        unfitted={"inverse_transform": lambda e, X: e.inverse_transform(np.zeros((3, 2)))}),
    "LatentTransformerROM": Case(
        lambda: rom.LatentTransformerROM(2, seq_len=3, pred_horizon=2, hidden=4,
                                         architecture="mlp", d_model=4, n_heads=1, n_layers=1,
                                         max_epochs=1, **TORCH),
        lambda s: ((_trajectories(s),), _trajectories(s + 1)),
        {"predict": lambda e, X: e.predict(X, n_steps=3, n_samples=2),
         "transform": lambda e, X: e.transform(X),
         "inverse_transform": lambda e, X: e.inverse_transform(e.transform(X)),
         "score": lambda e, X: e.score(X)},
        positional=("n_latent",)),
    "LDNet": Case(
        lambda: rom.LDNet(2, n_points=4, max_epochs=1, module__reconstruction_hidden=4,
                          module__dynamics_hidden=4, module__n_fourier=1, **TORCH),
        lambda s: ((_ldnet_data(s),), _ldnet_data(s + 1)),
        {"predict": lambda e, X: e.predict(X), "transform": lambda e, X: e.transform(X),
         "score": lambda e, X: e.score(X)},
        variable="a", fit_dim="time", predict_dim="time", positional=("n_latent",), grid=None,
        unfitted={"inverse_transform": lambda e, X: e.inverse_transform(X),
                  "decode": lambda e, X: e.decode(torch.zeros(3, 2)),
                  "decode_points": lambda e, X: e.decode_points(torch.zeros(3, 2), {"x": [0.5]}),
                  "decode_points_jacobian": lambda e, X: e.decode_points_jacobian(
                      torch.zeros(3, 2), {"x": [0.5]}),
                  "unscale_params": lambda e, X: e.unscale_params(np.zeros(1)),
                  "module_": lambda e, X: e.module_,
                  "relative_rmse": lambda e, X: e.relative_rmse(X)}),
    "GPClosure": _cl(lambda: closure.GPClosure(2, 2, max_epochs=2, random_state=0)),
    "VAEClosure": _cl(lambda: closure.VAEClosure(2, 2, hidden=4, max_epochs=2, **TORCH)),
    "DiffusionClosure": _cl(lambda: closure.DiffusionClosure(
        2, 2, hidden=4, n_layers=1, n_diffusion_steps=4, max_epochs=2, **TORCH)),
    "ConvFieldRegressor": Case(
        lambda: closure.ConvFieldRegressor(4, 2, 3, max_epochs=1, **TORCH),
        lambda s: ((_fields(s), _stress(s)), _fields(s + 1)),
        {"predict": lambda e, X: e.predict(X)}, fit_dim="x",
        positional=("hidden", "n_layers", "kernel_size"), units_of=lambda args: args[1]),
    "ClosedModel": Case(
        lambda: closure.ClosedModel(rom.PODLinearDynamics(2),
                                    closure.GPClosure(2, 2, max_epochs=2), n_members=2,
                                    random_state=0),
        lambda s: ((_fields(s), _small_scales(s)), _fields(s + 1)),
        {"predict": lambda e, X: e.predict(X, n_steps=2),
         "predict_resolved": lambda e, X: e.predict_resolved(X, n_steps=2)},
        positional=("rom", "closure")),
}


def _case(cls):
    if cls.__name__ not in CASES:
        pytest.fail(f"{cls.__name__} has no small configuration: add one to CASES in "
                    "tests/test_common_estimators.py")
    return CASES[cls.__name__]


_FITTED = {}


def _fitted(cls):
    """A fitted estimator of ``cls`` (fitted once per session), its fit arguments and X."""
    if cls not in _FITTED:
        case = _case(cls)
        args, X = case.data(0)
        _FITTED[cls] = case.make().fit(*args), args, X
    return _FITTED[cls]


def _outputs(case, est, X):
    return {name: call(est, X) for name, call in case.calls.items()}


def _assert_same(a, b, exact=True):
    """Equal outputs (tuples, dicts, xarray or arrays); NaN equal to NaN."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k], exact)
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y, exact)
    elif isinstance(a, (xr.Dataset, xr.DataArray)):
        if exact:
            xr.testing.assert_identical(a, b)
        else:
            xr.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    elif exact:
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _named(*names):
    """A regex matching any of ``names`` as quoted in a message ('u' or "u")."""
    return "|".join(f"['\"]{re.escape(n)}['\"]" for n in names)


# ------------------------------------------------------------------------------ the checks
def test_every_estimator_has_a_small_configuration():
    names = {c.__name__ for c in ESTIMATORS}
    assert names >= set(CASES), f"{set(CASES) - names} are not exported: remove them from CASES"
    missing = sorted(names - set(CASES))
    assert not missing, (f"{missing} have no small configuration: add one to CASES in "
                         "tests/test_common_estimators.py")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_sklearn_parameter_checks(cls):
    name, est = cls.__name__, cls()
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_parameters_are_declared_and_keyword_only(cls):
    """Every parameter has a constraint (checked at fit); only the leading ones listed in
    CASES may be positional (scikit-learn's convention)."""
    params = cls().get_params(deep=False)
    assert set(params) <= set(cls._parameter_constraints), \
        set(params) - set(cls._parameter_constraints)
    sig = inspect.signature(cls.__init__).parameters
    positional = [n for n, p in sig.items() if n != "self"
                  and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert tuple(positional) == _case(cls).positional


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_not_fitted_and_clone(cls):
    case = _case(cls)
    _, X = case.data(0)
    for name, call in {**case.calls, **case.unfitted}.items():
        with pytest.raises(NotFittedError):
            call(case.make(), X)
    est, _, _ = _fitted(cls)
    fresh = clone(est)
    assert fresh.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert repr(fresh.get_params()) == repr(case.make().get_params())
    assert not [k for k in vars(fresh) if k.endswith("_") and not k.startswith("_")]
    for name, call in case.calls.items():
        with pytest.raises(NotFittedError):
            call(fresh, X)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_pickle_round_trip_and_seed_reproducibility(cls):
    case = _case(cls)
    est, args, X = _fitted(cls)
    out = _outputs(case, est, X)
    _assert_same(out, _outputs(case, pickle.loads(pickle.dumps(est)), X))
    _assert_same(out, _outputs(case, est, X))  # an int seed: the same draws at every call
    _assert_same(out, _outputs(case, clone(est).fit(*args), X))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_input_untouched_and_units_kept(cls):
    case = _case(cls)
    args, X = case.data(0)
    before = copy.deepcopy((args, X))
    est = case.make().fit(*args)
    out = _outputs(case, est, X)
    for got, was in zip((*args, X), (*before[0], before[1])):
        xr.testing.assert_identical(got, was)
    main = next(iter(out.values()))
    main = main[0] if isinstance(main, tuple) else main
    if isinstance(main, xr.Dataset):
        reference = case.units_of(args)
        shared = [v for v in main.data_vars if v in reference.data_vars]
        assert shared, (list(main.data_vars), list(reference.data_vars))
        for v in shared:
            assert main[v].attrs.get("units") == reference[v].attrs.get("units"), v


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_nan_in_training_data_is_refused(cls):
    case = _case(cls)
    args, _ = case.data(0)
    for i, arg in enumerate(args):
        name = [v for v in arg.data_vars if case.fit_dim in arg[v].dims][-1]  # not the first
        bad = arg.copy(deep=True)
        bad[name][{case.fit_dim: 1}] = np.nan
        broken = args[:i] + (bad,) + args[i + 1:]
        with pytest.raises(ValueError, match="NaN") as err:
            case.make().fit(*broken)
        assert re.search(_named(name), str(err.value)), err.value  # which variable holds it


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_missing_variable_at_predict_is_named(cls):
    case = _case(cls)
    est, _, X = _fitted(cls)
    assert case.variable in X.data_vars
    without = X.drop_vars(case.variable)
    for name, call in case.calls.items():
        with pytest.raises((ValueError, KeyError, TypeError), match=_named(case.variable)):
            call(est, without)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_missing_dim_is_named(cls):
    case = _case(cls)
    args, _ = case.data(0)
    flat = tuple(a.isel({case.fit_dim: 0}, drop=True) if case.fit_dim in a.dims else a
                 for a in args)
    with pytest.raises((ValueError, KeyError, TypeError), match=_named(case.fit_dim)):
        case.make().fit(*flat)
    est, _, X = _fitted(cls)
    flat = X.isel({case.predict_dim: 0}, drop=True)
    names = [case.predict_dim] + [v for v in X.data_vars if case.predict_dim in X[v].dims]
    for name, call in case.calls.items():
        with pytest.raises((ValueError, KeyError, TypeError), match=_named(*names)):
            call(est, flat)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_dask_backed_data(cls):
    """Chunked training data and inputs fit and predict what numpy-backed ones do."""
    case = _case(cls)
    est, args, X = _fitted(cls)
    out = _outputs(case, est, X)

    def lazy(ds):
        return ds.chunk({case.fit_dim: 5} if case.fit_dim in ds.dims else {})

    _assert_same(out, _outputs(case, est, lazy(X)), exact=False)
    again = clone(est).fit(*(lazy(a) for a in args))
    _assert_same(out, _outputs(case, again, X), exact=False)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=IDS)
def test_other_grid_at_predict_is_refused_or_kept(cls):
    """Fields on another grid than the fitted one raise an error naming the grid dim, or the
    output is on the input's grid (a convolution applies anywhere): never a result labelled
    with the fitted grid."""
    case = _case(cls)
    if case.grid is None:
        pytest.skip(f"{cls.__name__} reads no gridded field at predict")
    est, _, X = _fitted(cls)
    moved = X.assign_coords({case.grid: X[case.grid].values + 0.5})
    for name, call in case.calls.items():
        try:
            out = call(est, moved)
        except ValueError as err:
            assert re.search(_named(case.grid), str(err)), (name, err)
            continue
        out = out[0] if isinstance(out, tuple) else out
        if case.grid in getattr(out, "dims", ()):
            np.testing.assert_array_equal(out[case.grid].values, moved[case.grid].values)
