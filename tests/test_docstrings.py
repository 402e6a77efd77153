"""Every public class and function of xdyn has a numpydoc docstring with a runnable example.

The public API is walked the way a user meets it: every module of the
``xdyn`` package whose dotted path has no component starting with ``_``, and
in each, the names of its ``__all__`` (or, without one, the public classes and
functions it defines). A re-exported object is checked once, under the module
that defines it. Each must have a numpydoc summary line and an ``Examples``
section with at least one ``>>>`` line, and that example must be one that
``pytest --doctest-modules`` actually collects (a decorator that hides the
function from :mod:`doctest` would otherwise leave it silently unrun), with at
least one line not marked ``+SKIP``. The examples themselves run as doctests of
their modules in the default ``pytest`` (``pyproject.toml``), so they are
checked for being right there, not here.

Public methods defined on public classes must at least have a summary line,
and a public estimator lists under ``Attributes`` every fitted attribute
(``self.name_ = ...``) that its methods, or those of its xdyn base classes, set.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import textwrap
import warnings

import pytest
from sklearn.base import BaseEstimator

import xdyn

docscrape = pytest.importorskip("numpydoc.docscrape")

# Public objects whose example cannot run as a doctest, each with the reason.
# Keep it short: an entry that passes (or no longer exists) fails
# ``test_allow_list_is_current``, so the list only shrinks.
ALLOWED_WITHOUT_EXAMPLE: dict[str, str] = {
    # benchmarks, not tests: their examples are shown with +SKIP
    "xdyn.bench.bench_da": "runs filters against DAPPER for tens of seconds (minutes in full)",
    "xdyn.bench.bench_systems": "times integrations for seconds; the numbers depend on the machine",
    "xdyn.bench_sweep.bench_sweep": "runs 64 experiments in xdyn and in DAPPER for minutes",
    "xdyn.bench.bench_forecast": "trains two forecasters for tens of seconds; machine-dependent",
    "xdyn.bench_ldensf.bench_ldensf": "times LD-EnSF and EnSF on 150^2 grids for minutes; "
                                      "ldensf_step_times has a small runnable example",
    "xdyn.experiments.neural_var.neural_var_experiment":
        "trains networks for minutes; tests/experiments/test_neural_var.py runs a small grid",
    "xdyn.experiments.kolmogorov_closure.kolmogorov_closure_experiment":
        "trains a ROM and three closures for minutes; tests/experiments/"
        "test_kolmogorov_closure.py tests its building blocks (--quick is slow-marked)",
    "xdyn.experiments.amortized.amortized_experiment":
        "trains an update network for minutes; tests/experiments/test_amortized.py runs a tiny "
        "end-to-end case",
}

# Estimators whose Attributes section may still miss fitted attributes, with the reason.
ALLOWED_UNLISTED_ATTRIBUTES: dict[str, str] = {}


def _public_modules():
    yield xdyn
    for info in pkgutil.walk_packages(xdyn.__path__, "xdyn."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        yield importlib.import_module(info.name)


def _public_objects() -> dict[str, object]:
    """``{"module.QualName": object}`` for every public class and function."""
    found: dict[int, tuple[str, object]] = {}
    for module in _public_modules():
        if hasattr(module, "__all__"):
            names = list(module.__all__)
        else:
            names = [name for name, obj in vars(module).items()
                     if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                     and getattr(obj, "__module__", None) == module.__name__]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants, registries, submodules
            if not getattr(obj, "__module__", "").startswith("xdyn"):
                continue  # re-exported from a dependency (numpy, sklearn ...)
            found.setdefault(id(obj), (f"{obj.__module__}.{obj.__qualname__}", obj))
    return dict(found.values())


def _public_methods(objects) -> dict[str, object]:
    """Public methods (and static/class methods) defined on the public classes themselves."""
    out = {}
    for qualname, cls in objects.items():
        if not inspect.isclass(cls):
            continue
        for name, attr in vars(cls).items():
            if name.startswith("_"):
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if inspect.isfunction(attr):
                out[f"{qualname}.{name}"] = attr
    return out


def _parse(obj):
    with warnings.catch_warnings():
        # numpydoc warns about unknown section titles; the checks below are what matter here
        warnings.simplefilter("ignore")
        return docscrape.NumpyDocString(inspect.getdoc(obj) or "")


def _collected_doctests(module_name: str, _cache={}) -> set[str]:
    """Names of the docstrings of a module that doctest finds and that hold examples it runs."""
    if module_name not in _cache:
        module = importlib.import_module(module_name)
        finder = doctest.DocTestFinder()
        _cache[module_name] = {
            test.name for test in finder.find(module)
            if any(not example.options.get(doctest.SKIP) for example in test.examples)}
    return _cache[module_name]


def _problems(qualname: str, obj) -> list[str]:
    try:
        doc = _parse(obj)
    except Exception as err:  # a malformed docstring is a problem to report, not a crash
        return [f"numpydoc cannot parse it ({err})"]
    problems = []
    if not "".join(doc["Summary"]).strip():
        problems.append("no summary line")
    if not any(line.lstrip().startswith(">>>") for line in doc["Examples"]):
        problems.append("no Examples section with a >>> line")
    elif qualname not in _collected_doctests(obj.__module__):
        problems.append("its example is not collected by doctest, or every line is +SKIP")
    return problems


OBJECTS = _public_objects()
METHODS = _public_methods(OBJECTS)


def test_walk_finds_the_public_api():
    # guards the walk itself: if it found nothing, every test below would pass
    for name in ["xdyn.systems.lorenz96.Lorenz96", "xdyn.assimilation.enkf.EnKF",
                 "xdyn.metrics.rmse", "xdyn.observe.base.ObservationOperator",
                 "xdyn.preprocessing.stacking.Stacker"]:
        assert name in OBJECTS, name
    assert len(OBJECTS) > 150, len(OBJECTS)
    assert "xdyn.systems.base.DynamicalSystem.simulate" in METHODS


def test_every_public_object_has_a_runnable_example():
    missing = {name: problems for name, obj in sorted(OBJECTS.items())
               if name not in ALLOWED_WITHOUT_EXAMPLE and (problems := _problems(name, obj))}
    assert not missing, (f"{len(missing)} of {len(OBJECTS)} public classes/functions lack a "
                         "numpydoc summary or a runnable Examples section:\n"
                         + "\n".join(f"  {name}: {', '.join(p)}" for name, p in missing.items()))


def test_every_public_method_has_a_summary_line():
    missing = []
    for name, method in sorted(METHODS.items()):
        try:
            summary = "".join(_parse(method)["Summary"]).strip()
        except Exception as err:
            summary = ""
            name = f"{name} (numpydoc cannot parse it: {err})"
        if not summary:
            missing.append(name)
    assert not missing, "public methods without a summary line:\n  " + "\n  ".join(missing)


def test_allow_list_is_current():
    stale = [name for name in ALLOWED_WITHOUT_EXAMPLE
             if name not in OBJECTS or not _problems(name, OBJECTS[name])]
    assert not stale, f"remove from ALLOWED_WITHOUT_EXAMPLE (gone, or has a runnable example now): {stale}"


def _fitted_attributes(cls) -> set[str]:
    """Names ``x_`` assigned as ``self.x_ = ...`` in the source of ``cls`` and its xdyn bases."""
    names = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("xdyn"):
            continue  # sklearn's and skorch's own fitted attributes are theirs to document
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            else:
                continue
            for target in targets:
                for sub in ast.walk(target):
                    if (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                            and sub.value.id == "self" and sub.attr.endswith("_")
                            and not sub.attr.startswith("_")):
                        names.add(sub.attr)
    return names


def _listed_attributes(cls) -> set[str]:
    return {name.strip() for entry in _parse(cls)["Attributes"] for name in entry.name.split(",")}


ESTIMATORS = {name: obj for name, obj in OBJECTS.items()
              if inspect.isclass(obj) and issubclass(obj, BaseEstimator)}


def test_fitted_attribute_scan_finds_them():
    # guards the scan: an assimilator sets system_ and operator_ in BaseAssimilator.fit
    from xdyn.assimilation import EnKF
    from xdyn.preprocessing import StandardScaler

    assert {"system_", "operator_", "n_state_"} <= _fitted_attributes(EnKF)
    assert {"mean_", "scale_"} <= _fitted_attributes(StandardScaler)


def test_estimators_document_their_fitted_attributes():
    missing = {}
    for name, cls in sorted(ESTIMATORS.items()):
        if name in ALLOWED_UNLISTED_ATTRIBUTES:
            continue
        unlisted = sorted(_fitted_attributes(cls) - _listed_attributes(cls))
        if unlisted:
            missing[name] = unlisted
    assert not missing, ("estimators whose Attributes section misses fitted attributes:\n"
                         + "\n".join(f"  {name}: {', '.join(a)}" for name, a in missing.items()))


def test_attribute_allow_list_is_current():
    stale = [name for name in ALLOWED_UNLISTED_ATTRIBUTES
             if name not in ESTIMATORS
             or not _fitted_attributes(ESTIMATORS[name]) - _listed_attributes(ESTIMATORS[name])]
    assert not stale, f"remove from ALLOWED_UNLISTED_ATTRIBUTES: {stale}"
