"""The built-in observation operators and the short specs that build them."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state

from xdyn._units import power_units
from xdyn.observe._layout import _layout, _names
from xdyn.observe.base import ObservationOperator, operator_from_spec
from xdyn.systems._validation import _check_int

__all__ = ["Identity", "SelectVariables", "EveryKth", "RandomPoints", "GridPoints", "Squared",
           "Arctan", "make_operator"]

class Identity(ObservationOperator):
    """Observe the whole state.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> Identity().n_obs(Lorenz63())
    3
    """

    def indices(self, layout):
        layout = _layout(layout)
        return np.arange(sum(v.size for v in layout))


class SelectVariables(ObservationOperator):
    """Observe whole variables by name (``"x"`` or ``["x", "y"]``).

    Parameters
    ----------
    variables : str or list of str, default="x"
        The variables to observe, every entry of each, in the order given (not
        the state's order). A name the state lacks raises ``ValueError`` when
        the operator is used.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> SelectVariables(["x", "y"]).indices(Lorenz63()).tolist()
    [0, 1]
    """

    def __init__(self, variables="x"):
        self.variables = variables

    def indices(self, layout):
        layout = _layout(layout)
        names = [self.variables] if isinstance(self.variables, str) else list(self.variables)
        known = [v.name for v in layout]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown variable(s) {unknown}; the state has {known}")
        starts = np.cumsum([0] + [v.size for v in layout])
        out = [np.arange(starts[known.index(n)], starts[known.index(n) + 1]) for n in names]
        return np.concatenate(out)


class EveryKth(ObservationOperator):
    """Observe every ``k``-th site along ``dim`` (Lorenz-96 ``k``, a grid's ``x``).

    Parameters
    ----------
    k : int
        Stride.
    offset : int, default=0
        First observed site.
    dim : str, optional
        The spatial dim to thin; the first spatial dim of each variable if omitted.
    variables : str or list of str, optional
        Restrict to these variables (default: every variable with ``dim``); a
        named variable without ``dim`` is an error, not left out.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> EveryKth(4).indices(Lorenz96(n=40)).tolist()[:3]
    [0, 4, 8]
    """

    def __init__(self, k=4, offset=0, dim=None, variables=None):
        self.k = k
        self.offset = offset
        self.dim = dim
        self.variables = variables

    def indices(self, layout):
        layout = _layout(layout)
        k = _check_int(self.k, "k", 1, "EveryKth")
        offset = _check_int(self.offset, "offset", 0, "EveryKth")
        names = _names(self.variables, layout, type(self).__name__)
        lacking = [v.name for v in layout if names is not None and v.name in names
                   and (self.dim or (v.dims[0] if v.dims else None)) not in v.dims]
        if lacking:
            what = repr(self.dim) if self.dim else "to thin"
            raise ValueError(f"EveryKth: variable(s) {lacking} have no dim {what}; observe "
                             "them with GridPoints or SelectVariables")
        out, start = [], 0
        for v in layout:
            use = (names is None or v.name in names) and v.dims
            dim = self.dim or (v.dims[0] if v.dims else None)
            if use and dim in v.dims:
                ax = v.dims.index(dim)
                grid = np.arange(v.size).reshape(v.shape)
                sel = [slice(None)] * len(v.shape)
                sel[ax] = slice(offset, None, k)
                out.append(start + grid[tuple(sel)].ravel())
            start += v.size
        if not out:
            raise ValueError(f"no state variable has dim {self.dim!r} to thin")
        return np.concatenate(out)


class RandomPoints(ObservationOperator):
    """Fixed random sparse points on a grid (drawn once from ``random_state``).

    Parameters
    ----------
    n_points : int
        Number of observed grid points per variable. Variables on the same grid
        (the same dims and sizes, in any order) are observed at the same points.
    variables : str or list of str, optional
        Variables to observe (default: all).
    random_state : int
        Seed for the point locations; the same seed gives the same network.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> op = RandomPoints(5, random_state=0)
    >>> len(op.indices(Lorenz96()))
    5
    """

    def __init__(self, n_points=10, variables=None, random_state=0):
        self.n_points = n_points
        self.variables = variables
        self.random_state = random_state

    def indices(self, layout):
        layout = _layout(layout)
        if not isinstance(self.random_state, (int, np.integer)):
            raise TypeError("RandomPoints needs an integer random_state: the network must be fixed")
        names = _names(self.variables, layout, type(self).__name__)
        n_points = _check_int(self.n_points, "n_points", 1, "RandomPoints")
        out, start, order = [], 0, {}
        for v in layout:
            if names is None or v.name in names:
                if n_points > v.size:
                    raise ValueError(
                        f"n_points={self.n_points} exceeds the {v.size} points of {v.name!r}")
                # the same draw (a fresh generator) for every variable, read in the dims
                # order of the first one on the same grid and mapped by dim name: fields on
                # one grid are seen at the same points, whatever their dims order
                flat = check_random_state(self.random_state).choice(v.size, n_points,
                                                                     replace=False)
                ref = order.setdefault(frozenset(zip(v.dims, v.shape)), v.dims)
                if ref != v.dims:
                    at = np.unravel_index(flat, [v.shape[v.dims.index(d)] for d in ref])
                    flat = np.ravel_multi_index([at[ref.index(d)] for d in v.dims], v.shape)
                out.append(start + np.sort(flat))
            start += v.size
        return np.concatenate(out)


class _Elementwise(ObservationOperator):
    """A nonlinear function (``_function``) of another operator's observations
    (``base``; the identity when None), after that operator's own transform:
    ``Squared(Arctan())`` observes ``arctan(x)**2``. Not registered: the
    subclasses are."""

    linear = False

    def __init__(self, base=None):
        self.base = base

    def _base(self):
        return Identity() if self.base is None else self.base

    def indices(self, layout):
        return self._base().indices(layout)

    def _transform(self, z):
        return self._function(self._base()._transform(z))

    def obs_units(self, units):
        """Units of ``_function`` of the base operator's observations (see the base class).

        Examples
        --------
        >>> Squared(SelectVariables("x")).obs_units("K")
        'K2'
        """
        return self._function_units(self._base().obs_units(units))

    def _function_units(self, units):
        return None  # unknown, unless a subclass says


class Squared(_Elementwise):
    """Nonlinear operator: the square of another operator's observations (``x**2``).

    Parameters
    ----------
    base : ObservationOperator or None, default=None
        The operator choosing which state entries are squared; None: all of
        them (:class:`Identity`). A nonlinear ``base`` transforms first
        (``Squared(Arctan())`` is ``arctan(x)**2``). An operator object, not a
        spec (build one with :func:`make_operator`).

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz63
    >>> op = Squared(SelectVariables("x"))
    >>> op.apply(torch.tensor([[2.0, 1.0, 0.0]]), Lorenz63()).tolist()
    [[4.0]]
    """

    def _function(self, z):
        return z**2

    def _function_units(self, units):
        # read as units (xdyn._units): "m2 s-2", any spelling of dimensionless squares to "1"
        return power_units(units, 2)


class GridPoints(ObservationOperator):
    """Observe a field at every ``stride``-th grid point along each of its spatial dims.

    The sparse station network of the score-filter experiments (LD-EnSF:
    every 15th point of a 150x150 grid, 0.44% of it). Scalar variables are
    observed as they are.

    Parameters
    ----------
    stride : int >= 1, default=15
    offset : int >= 0, default=0
        First observed index along each dim.
    variables : str, list of str or None
        Restrict to these variables.

    Examples
    --------
    >>> from xdyn.systems import KolmogorovFlow
    >>> op = GridPoints(stride=8)
    >>> op.n_obs(KolmogorovFlow(N=32))  # 4 x 4 of the 32 x 32 vorticity
    16
    >>> op.indices(KolmogorovFlow(N=32).variables)[:5].tolist()
    [0, 8, 16, 24, 256]
    """

    def __init__(self, stride=15, offset=0, variables=None):
        self.stride = stride
        self.offset = offset
        self.variables = variables

    def indices(self, layout):
        layout = _layout(layout)
        stride = _check_int(self.stride, "stride", 1, "GridPoints")
        offset = _check_int(self.offset, "offset", 0, "GridPoints")
        names = _names(self.variables, layout, "GridPoints")
        out, start = [], 0
        for v in layout:
            if names is None or v.name in names:
                grid = np.arange(v.size).reshape(v.shape)
                picked = grid[tuple(slice(offset, None, stride) for _ in v.shape)]
                out.append(start + picked.ravel())
            start += v.size
        return np.concatenate(out) if out else np.zeros(0, dtype=int)


class Arctan(_Elementwise):
    """Nonlinear operator: ``arctan`` of another operator's observations.

    The bounded, saturating observation of the score-filter papers (Bao et
    al. 2024): large states are seen only through their sign, so a Gaussian
    filter's linearisation fails where a score or particle filter does not.

    Parameters
    ----------
    base : ObservationOperator or None, default=None
        The operator choosing which state entries are observed through
        ``arctan``; None: all of them (:class:`Identity`). A nonlinear
        ``base`` transforms first (``Arctan(Squared())`` is ``arctan(x**2)``).
        An operator object, not a spec (``make_operator`` takes
        ``"arctan(<spec>)"``).

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz96
    >>> op = Arctan(EveryKth(k=4))
    >>> y = op.apply(torch.tensor([[1.0, 9.0, 9.0, 9.0, -1e6, 9.0, 9.0, 9.0]]), Lorenz96(n=8))
    >>> [round(v, 4) for v in y[0].tolist()]
    [0.7854, -1.5708]
    >>> make_operator("arctan")
    Arctan()
    """

    def _function(self, z):
        return torch.arctan(z)

    def _function_units(self, units):
        return "1"  # an angle (radians), whatever the units of its argument


def make_operator(spec) -> ObservationOperator:
    """Build an operator from a short spec.

    ``"identity"`` / ``None``; a variable name or list of names; ``"x^2"`` or
    ``"x2"`` (squared variable); ``"every4"`` (every 4th site); ``"arctan"``
    (arctan of the whole state) or ``"arctan(<spec>)"``; the full spec that
    :meth:`ObservationOperator.spec` writes into observation attrs; or an operator.

    Parameters
    ----------
    spec : str, list of str, dict, ObservationOperator or None
        A dict with an ``"operator"`` key, or JSON text (a string starting
        with ``{``, such as ``obs.attrs["operator"]``): :func:`operator_from_spec`;
        ``None``, ``"identity"`` or ``"all"``: :class:`Identity`; ``"<var>^2"``,
        ``"<var>**2"`` or a two-letter ``"<var>2"``: :class:`Squared` of that variable
        (a two-letter variable ending in 2, such as ``h2``, is selected by a list,
        ``["h2"]``);
        ``"every<k>"`` (k >= 1): :class:`EveryKth`; ``"arctan"`` / ``"arctan(<spec>)"``:
        :class:`Arctan`; any other string or a list: :class:`SelectVariables`. An
        operator is returned as is.

    Returns
    -------
    ObservationOperator

    Raises
    ------
    TypeError
        A spec of another type (a dict without an ``"operator"`` key included).
    ValueError
        ``"every<k>"`` without a whole number k >= 1; a full spec that
        :func:`operator_from_spec` cannot rebuild.

    Examples
    --------
    >>> make_operator("every4")
    EveryKth()
    >>> make_operator(["x", "y"])
    SelectVariables(variables=['x', 'y'])
    >>> make_operator(EveryKth(k=2).spec())  # as recorded in obs.attrs["operator"]
    EveryKth(k=2)
    """
    if isinstance(spec, ObservationOperator):
        return spec
    if (isinstance(spec, dict) and "operator" in spec) or (
            isinstance(spec, str) and spec.lstrip().startswith("{")):
        return operator_from_spec(spec)
    if spec is None or spec == "identity" or spec == "all":
        return Identity()
    if isinstance(spec, str):
        if spec == "arctan":
            return Arctan()
        if spec.startswith("arctan(") and spec.endswith(")"):
            return Arctan(make_operator(spec[len("arctan("):-1]))
        for suffix in ("**2", "^2"):  # exactly one suffix off: "x2^2" squares x2
            if spec.endswith(suffix) and len(spec) > len(suffix):
                return Squared(SelectVariables(spec[:-len(suffix)]))
        if len(spec) == 2 and spec.endswith("2"):
            return Squared(SelectVariables(spec[0]))
        if spec.startswith("every"):
            k = spec[len("every"):]
            if not k.isdigit() or int(k) < 1:
                raise ValueError(
                    f"operator {spec!r}: 'every<k>' needs a whole number k >= 1 (e.g. 'every4')"
                )
            return EveryKth(int(k))
        return SelectVariables(spec)
    if isinstance(spec, (list, tuple)):
        return SelectVariables(list(spec))
    raise TypeError(f"cannot build an observation operator from {spec!r}")
