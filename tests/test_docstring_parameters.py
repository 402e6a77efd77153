"""Every public class and function of xdyn documents every parameter of its signature.

In the spirit of scikit-learn's ``test_docstring_parameters``. The public API
is walked exactly as in ``tests/test_docstrings.py`` (its ``OBJECTS``): every
module of ``xdyn`` whose dotted path has no ``_``-prefixed component, the names
of its ``__all__`` (or the public classes and functions it defines), a
re-exported object checked once under the module that defines it.

For a function its signature, for a class the signature of its ``__init__``,
is compared with the numpydoc ``Parameters`` and ``Other Parameters`` sections
of its docstring (the class docstring for a class). Every parameter but
``self``, ``cls``, ``*args`` and ``**kwargs`` must be documented (an entry
``a, b : int`` documents both), and a documented name that is not in the
signature is stale, unless the signature takes ``**kwargs`` (which the
documented names may then be passed through).
"""

from __future__ import annotations

import inspect
import warnings

import pytest

docscrape = pytest.importorskip("numpydoc.docscrape")

from test_docstrings import OBJECTS  # noqa: E402  (the same walk of the public API)

# Public objects whose parameters may still be undocumented (or stale), each with the reason.
# Keep it short: an entry that passes (or no longer exists) fails
# ``test_allow_list_is_current``, so the list only shrinks.
ALLOWED_UNDOCUMENTED: dict[str, str] = {}

_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _signature(obj) -> inspect.Signature | None:
    try:
        return inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
        return None


def _documented(obj) -> set[str]:
    """Names in the numpydoc ``Parameters`` and ``Other Parameters`` sections of ``obj``."""
    with warnings.catch_warnings():
        # numpydoc warns about unknown section titles; only the parameter sections matter here
        warnings.simplefilter("ignore")
        doc = docscrape.NumpyDocString(inspect.getdoc(obj) or "")
    return {name.strip().lstrip("*")
            for entry in doc["Parameters"] + doc["Other Parameters"]
            for name in entry.name.split(",") if name.strip()}


def _problems(obj) -> list[str]:
    """What is wrong with the parameter documentation of ``obj`` (empty when nothing is)."""
    sig = _signature(obj)
    if sig is None:
        return []
    try:
        documented = _documented(obj)
    except Exception as err:  # a malformed docstring is a problem to report, not a crash
        return [f"numpydoc cannot parse it ({err})"]
    params = sig.parameters.values()
    required = [p.name for p in params
                if p.name not in ("self", "cls") and p.kind not in _SKIPPED_KINDS]
    problems = []
    if missing := [name for name in required if name not in documented]:
        problems.append(f"undocumented: {', '.join(missing)}")
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        stale = sorted(documented - {p.name for p in params})
        if stale:
            problems.append(f"documented but not in the signature: {', '.join(stale)}")
    return problems


def test_parameter_check_sees_what_it_should():
    # guards the check itself: if it saw nothing, the tests below would pass vacuously
    def documented(a, b, c=None, *args, **kwargs):
        """Summary.

        Parameters
        ----------
        a, b : int
            Two.
        c : None
            Three.
        """

    def undocumented(a, b, *, c=1):
        """Summary.

        Parameters
        ----------
        a : int
            One.
        d : int
            Gone.
        """

    class Documented:
        """Summary.

        Parameters
        ----------
        x : float
            One.
        """

        def __init__(self, x):
            self.x = x

    assert _problems(documented) == []
    assert _problems(Documented) == []
    assert _problems(undocumented) == ["undocumented: b, c",
                                       "documented but not in the signature: d"]
    assert "xdyn.metrics.rmse" in OBJECTS and len(OBJECTS) > 150, len(OBJECTS)
    assert {"forecast", "truth"} <= _documented(OBJECTS["xdyn.metrics.rmse"])


def test_every_parameter_is_documented():
    bad = {name: problems for name, obj in sorted(OBJECTS.items())
           if name not in ALLOWED_UNDOCUMENTED and (problems := _problems(obj))}
    assert not bad, (f"{len(bad)} of {len(OBJECTS)} public classes/functions do not document "
                     "their parameters (numpydoc Parameters / Other Parameters):\n"
                     + "\n".join(f"  {name}: {'; '.join(p)}" for name, p in bad.items()))


def test_allow_list_is_current():
    stale = [name for name in ALLOWED_UNDOCUMENTED
             if name not in OBJECTS or not _problems(OBJECTS[name])]
    assert not stale, ("remove from ALLOWED_UNDOCUMENTED (gone, or documents its parameters "
                       f"now): {stale}")
