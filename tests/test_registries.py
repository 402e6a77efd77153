"""One registry mechanism: systems and assimilators register themselves by ``name``."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.utils import check_random_state

import xdyn.assimilation as assimilation
import xdyn.systems as systems
from xdyn.assimilation import (BaseAssimilator, OptimalInterpolation, Var3D, make_assimilator,
                               registered_assimilators)
from xdyn.assimilation.base import ASSIMILATORS
from xdyn.observe import observe
from xdyn.systems import DynamicalSystem, StateVariable
from xdyn.systems.base import SYSTEMS
from xdyn.systems.registry import get_system, make_system, registered_systems, system_from_attrs


def _exported(module, base):
    return {getattr(module, n) for n in module.__all__
            if isinstance(getattr(module, n), type) and issubclass(getattr(module, n), base)
            and getattr(module, n) is not base}


def _from_xdyn(classes):
    """Classes defined in an xdyn module (not in its doctests: those run in a copy)."""
    return {c for c in classes.values() if c.__module__.startswith("xdyn.")
            and getattr(sys.modules[c.__module__], c.__name__, None) is c}


@pytest.fixture
def scratch_registries(monkeypatch):
    """Classes a test defines leave the registries when it ends (other tests walk them)."""
    for reg in (ASSIMILATORS, SYSTEMS):
        monkeypatch.setattr(reg, "_classes", dict(reg._classes))
        monkeypatch.setattr(reg, "_primary", dict(reg._primary))


def test_every_concrete_assimilator_is_registered_once_under_its_name():
    classes = registered_assimilators()
    # other tests and doctests register their own classes; xdyn's are exactly its exported ones
    assert _from_xdyn(classes) == _exported(assimilation, BaseAssimilator)
    assert all(cls.name == name for name, cls in classes.items())
    # the old hand-kept short names all still work
    old = {"enkf": "EnKF", "enkf-n": "EnKFN", "letkf": "LETKF", "pf": "ParticleFilter",
           "particle-filter": "ParticleFilter", "oi": "OptimalInterpolation", "3dvar": "Var3D",
           "var3d": "Var3D", "4dvar": "Var4D", "var4d": "Var4D", "extkf": "ExtendedKalmanFilter",
           "ekf": "ExtendedKalmanFilter", "neural-var": "NeuralVar3D"}
    assert {k: assimilation.METHODS[k].__name__ for k in old} == old
    # intermediate bases declare no name and stay out
    names = {c.__name__ for c in classes.values()}
    assert not names & {"BaseEnsembleAssimilator", "StaticCovarianceCycle", "BaseAssimilator"}


def test_every_system_is_registered_under_its_name_and_class_name():
    classes = registered_systems()
    assert _from_xdyn(classes) == _exported(systems, DynamicalSystem)
    for name, cls in classes.items():
        assert make_system(name).__class__ is cls
        assert get_system(cls.__name__).__class__ is cls


@pytest.mark.parametrize("make, name, suggestion", [
    (make_assimilator, "enfk", "'enkf'"), (make_assimilator, "LETKF-N", "'letkf'"),
    (make_system, "lorenz-96", "'lorenz96'"), (make_system, "Lorenz_63", "'lorenz63'"),
])
def test_unknown_names_suggest_the_closest(make, name, suggestion):
    with pytest.raises(ValueError, match=f"unknown .*{name!r}; did you mean [^?]*{suggestion}"):
        make(name)


def test_unknown_name_without_a_close_match_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown system 'zzz'; known: \[.*'lorenz96'"):
        make_system("zzz")


def _l96_obs():
    from xdyn.systems import Lorenz96

    truth = Lorenz96(n=8).simulate(n_steps=40, burn_in=2.0, random_state=0)
    return truth, observe(truth, "identity", noise_std=1.0, random_state=1)


def test_user_assimilator_with_a_name_is_reachable_by_name_and_accessor(scratch_registries):
    class Var3DPlus(Var3D):
        """A user's 3D-Var variant (here: the same analysis)."""

        name = "var3d-plus"
        aliases = ("my-3dvar",)

    truth, obs = _l96_obs()
    assert type(make_assimilator("VAR3D-PLUS")) is Var3DPlus
    assert type(make_assimilator("my-3dvar")) is Var3DPlus
    assert "var3d-plus" in registered_assimilators()
    # the accessor finds it and runs the inherited analysis: equal to the parent's
    ours = obs.xdyn.assimilate("var3d-plus", truth, B_scale=0.5)
    parent = Var3D(B_scale=0.5).fit(obs, truth).predict(obs)
    np.testing.assert_array_equal(ours.x.values, parent.x.values)
    from xdyn.metrics import analysis_rmse

    assert analysis_rmse(ours, truth) < 1.0  # below the observation noise


def test_subclass_without_its_own_name_does_not_shadow_the_parent(scratch_registries):
    class Tweaked(OptimalInterpolation):
        pass

    class _PrivateHelper(OptimalInterpolation):
        name = "private-helper"

    assert type(make_assimilator("oi")) is OptimalInterpolation
    assert Tweaked not in registered_assimilators().values()
    with pytest.raises(ValueError, match="unknown assimilation method 'private-helper'"):
        make_assimilator("private-helper")


def test_a_different_class_taking_a_name_warns(scratch_registries):
    with pytest.warns(UserWarning, match="assimilation method name 'oi'"):
        class OtherOI(OptimalInterpolation):
            name = "oi"
    assert type(make_assimilator("oi")) is OtherOI


def test_redefining_the_same_class_replaces_it_silently(scratch_registries):
    def define():
        class Again(OptimalInterpolation):
            name = "again-oi"
        return Again

    first = define()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a re-run notebook cell must not warn
        second = define()
    assert first is not second and type(make_assimilator("again-oi")) is second


def test_user_system_with_a_name_is_rebuilt_from_attrs(scratch_registries):
    class Decay2(DynamicalSystem):
        name = "decay2"
        aliases = ("exp-decay",)
        _parameter_constraints = {"rate": "real>0"}

        def __init__(self, rate=1.0):
            self.rate = rate

        def rhs(self, t, x):
            return -self.rate * x

        def _variables(self):
            return [StateVariable("c", attrs={"units": "1"})]

        def random_initial_state(self, n, random_state=None):
            return check_random_state(random_state).uniform(1.0, 2.0, size=(n, 1))

    ds = Decay2(rate=0.5).simulate(t_span=1.0, dt=0.1, x0=[1.0])
    rebuilt = system_from_attrs(ds.attrs)
    assert type(rebuilt) is Decay2 and rebuilt.rate == 0.5
    assert type(make_system("exp-decay")) is Decay2
    # the rebuilt system gives the same trajectory: c(1) = exp(-0.5)
    again = rebuilt.simulate(t_span=1.0, dt=0.1, x0=[1.0])
    np.testing.assert_allclose(float(again.c[-1]), np.exp(-0.5), rtol=1e-6)


def test_a_subclass_without_its_own_name_is_rebuilt_from_attrs():
    # describe() records type(obj).__name__; a subclass that keeps its parent's
    # name must still be found by it (and must not shadow the parent)
    from xdyn.systems import Lorenz96
    from xdyn.systems.registry import system_from_attrs

    class MyLorenz96(Lorenz96):
        pass

    rebuilt = system_from_attrs(MyLorenz96(n=8).describe())
    assert type(rebuilt) is MyLorenz96 and rebuilt.n == 8
    assert make_system("lorenz96").__class__ is Lorenz96
    assert "MyLorenz96" not in {c.__name__ for c in registered_systems().values()}


def test_system_records_written_before_plain_json_are_read_back_with_a_warning():
    # records written before plain() stored numpy parameters by str(): n=np.int64(40) as
    # "40"; the rebuilt Lorenz96(n="40") then failed at its first use
    old = {"system": "Lorenz96", "integrator": "rk4",
           "system_params": '{"F": "8.5", "n": "12", "dtype": "float32", "device": "cpu"}'}
    with pytest.warns(UserWarning, match=r"\['F', 'n'\].*older xdyn"):
        rebuilt = system_from_attrs(old)
    assert (rebuilt.n, rebuilt.F, rebuilt.dtype) == (12, 8.5, "float32")
    assert rebuilt.simulate(n_steps=2, dt=0.01).x.shape == (3, 12)
