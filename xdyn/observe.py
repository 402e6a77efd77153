"""Observation operators and synthetic observations.

An operator maps a system state to observations. Every operator here works in
two worlds:

* on a flat, batched torch state ``(..., n_state)`` through :meth:`apply`
  (differentiable; this is what assimilators and learned models call), and
* on a labelled Dataset through :func:`observe`, which draws noisy
  observations with an ``obs`` dim whose coordinates locate each observation.

The state layout (which variables, which dims) comes from a system's
``variables`` or is read off a Dataset with :func:`layout_from_dataset`.
"""

from __future__ import annotations

import json
import warnings
from typing import Sequence

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from xdyn._registry import Registry
from xdyn.preprocessing.stacking import flatten_variables
from xdyn.systems._validation import _check_int, _check_real
from xdyn.systems.base import StateVariable

__all__ = [
    "ObservationOperator",
    "Identity",
    "SelectVariables",
    "EveryKth",
    "Squared",
    "RandomPoints",
    "make_operator",
    "operator_from_spec",
    "registered_operators",
    "layout_from_dataset",
    "observe",
]

SAMPLE_DIMS = ("time", "member", "trajectory")


def layout_from_dataset(ds: xr.Dataset, sample_dims: Sequence[str] = SAMPLE_DIMS):
    """State variables of ``ds``: every data variable, its non-sample dims as state dims.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A state Dataset (an unnamed DataArray is called ``"state"``).
    sample_dims : sequence of str, default ("time", "member", "trajectory")
        Dims that index states rather than locate a value inside one.

    Returns
    -------
    list of xdyn.systems.base.StateVariable
        In the order of the data variables, with their attrs.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"x": ("time", np.zeros(4)),
    ...                  "w": (("time", "y"), np.zeros((4, 3)), {"units": "m"})})
    >>> layout_from_dataset(ds)
    [StateVariable(name='x', dims=(), shape=(), attrs={}), StateVariable(name='w', dims=('y',), shape=(3,), attrs={'units': 'm'})]
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "state")
    out = []
    for name, da in ds.data_vars.items():
        dims = tuple(d for d in da.dims if d not in sample_dims)
        out.append(StateVariable(str(name), dims, tuple(da.sizes[d] for d in dims), dict(da.attrs)))
    return out


def _layout(system_or_layout):
    # a Dataset first: it also has a ``variables`` attribute (its names, coords included)
    if isinstance(system_or_layout, (xr.Dataset, xr.DataArray)):
        return layout_from_dataset(system_or_layout)
    if hasattr(system_or_layout, "variables"):
        return list(system_or_layout.variables)
    return list(system_or_layout)


def _names(variables, layout, who):
    """``variables`` as a list of names (None: all), each checked to be in ``layout``."""
    if variables is None:
        return None
    names = [variables] if isinstance(variables, str) else list(variables)
    known = [v.name for v in layout]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{who}: unknown variable(s) {unknown}; the state has {known}")
    return names


# Every ObservationOperator subclass, by class name: what ``operator_from_spec``
# rebuilds from the ``operator`` attr of an observation Dataset.
OPERATORS = Registry("observation operator", warn_unnamed=True)


class ObservationOperator(BaseEstimator):
    """Base class: observe a subset of the flat state, optionally transformed.

    Subclasses implement :meth:`indices`, which xdyn calls with the state
    layout: a list of :class:`~xdyn.systems.StateVariable` (name, dims, shape)
    in flat-state order. Nonlinear ones also override :meth:`_transform` (a
    differentiable torch function of the selected components) and set
    ``linear = False``. Parameters go in ``__init__`` and
    are stored unchanged (scikit-learn convention), so :meth:`spec` can write
    them into the observations' attrs.

    Every subclass is registered by its class name when it is defined, so
    :func:`operator_from_spec` (and an assimilator given observations without
    an explicit ``operator``) rebuilds it from those attrs -- in any session
    where the class is defined or imported. Defining a class again under the
    same name (a re-run notebook cell) replaces the earlier one; a different
    class taking a name already in use warns. Parameters must be JSON-friendly
    (numbers, strings, lists, None, or other operators) to survive the round
    trip.

    Parameters
    ----------
    **params
        The base class takes none. A subclass's ``__init__`` takes its own
        parameters as keyword arguments and stores them unchanged under the
        same names, JSON-friendly, so that :meth:`spec` writes them into the
        observations' attrs and :func:`operator_from_spec` rebuilds it.

    Examples
    --------
    A custom operator that observes the first and last flat components:

    >>> import numpy as np
    >>> from xdyn.systems import Lorenz96
    >>> class EndPoints(ObservationOperator):
    ...     def indices(self, layout):
    ...         n = sum(v.size for v in layout)
    ...         return np.array([0, n - 1])
    >>> EndPoints().indices(Lorenz96(n=8).variables).tolist()
    [0, 7]
    >>> EndPoints().n_obs(Lorenz96(n=8))
    2
    >>> operator_from_spec(EndPoints().spec())
    EndPoints()

    A nonlinear one with a parameter: the cube of every ``stride``-th component.
    ``_transform`` must be a differentiable torch function (4D-Var and the
    learned assimilators take gradients through it):

    >>> import torch
    >>> class CubedEvery(ObservationOperator):
    ...     linear = False
    ...     def __init__(self, stride=2):
    ...         self.stride = stride
    ...     def indices(self, layout):
    ...         return np.arange(0, sum(v.size for v in layout), self.stride)
    ...     def _transform(self, z):
    ...         return z ** 3
    >>> H = CubedEvery(stride=4)
    >>> H.apply(torch.arange(8.0), Lorenz96(n=8)).tolist()
    [0.0, 64.0]
    >>> truth = Lorenz96(n=8).simulate(n_steps=3, random_state=0)
    >>> obs = observe(truth, H, noise_std=0.5, random_state=0)
    >>> obs.sizes["obs"], obs.k.values.tolist(), obs.attrs["operator"]
    (2, [0, 4], '{"operator": "CubedEvery", "stride": 4}')
    >>> operator_from_spec(obs.attrs["operator"])
    CubedEvery(stride=4)
    """

    linear = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPERATORS.add(cls)  # by class name (operators declare no ``name``)

    def indices(self, layout) -> np.ndarray:
        """Flat state indices observed, in ``obs`` order (``layout``: list of StateVariable).

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> EveryKth(k=4).indices(Lorenz96(n=8).variables)
        array([0, 4])
        """
        raise NotImplementedError

    def _transform(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def n_obs(self, layout) -> int:
        """Number of observations per time.

        ``layout``: a system, a state Dataset or a list of StateVariable.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> EveryKth(k=4).n_obs(Lorenz96(n=40))
        10
        """
        return len(self.indices(_layout(layout)))

    def apply(self, x: torch.Tensor, layout) -> torch.Tensor:
        """Observe flat states ``x`` of shape ``(..., n_state)`` -> ``(..., n_obs)``.

        Differentiable and batched over all leading dims.

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz96
        >>> x = torch.arange(16.0).reshape(2, 8)  # two states
        >>> EveryKth(k=4).apply(x, Lorenz96(n=8))
        tensor([[ 0.,  4.],
                [ 8., 12.]])
        """
        idx = torch.as_tensor(self.indices(_layout(layout)), device=x.device)
        return self._transform(x.index_select(-1, idx))

    def matrix(self, layout) -> np.ndarray:
        """The linear operator ``H`` as a dense ``(n_obs, n_state)`` matrix.

        Examples
        --------
        >>> from xdyn.systems import Lorenz63
        >>> SelectVariables(["x", "z"]).matrix(Lorenz63())
        array([[1., 0., 0.],
               [0., 0., 1.]])
        >>> Squared().matrix(Lorenz63())
        Traceback (most recent call last):
        ...
        ValueError: Squared is nonlinear and has no matrix
        """
        if not self.linear:
            raise ValueError(f"{type(self).__name__} is nonlinear and has no matrix")
        layout = _layout(layout)
        n_state = sum(v.size for v in layout)
        idx = self.indices(layout)
        H = np.zeros((len(idx), n_state))
        H[np.arange(len(idx)), idx] = 1.0
        return H

    def obs_coords(self, layout) -> dict:
        """Coordinates along ``obs``: variable name, flat index, and spatial position.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> coords = EveryKth(k=4).obs_coords(Lorenz96(n=8))
        >>> coords["variable"][1].tolist(), coords["k"][1].tolist()
        (['x', 'x'], [0, 4])
        """
        layout = _layout(layout)
        idx = self.indices(layout)
        names, pos = _locate(layout, idx)
        coords = {
            "obs": ("obs", np.arange(len(idx))),
            "variable": ("obs", np.array(names, dtype=str)),
            "state_index": ("obs", idx.astype(np.int64)),
        }
        for dim, values in pos.items():
            coords[dim] = ("obs", values)
        return coords

    def spec(self) -> str:
        """JSON description stored in observation attrs.

        Examples
        --------
        >>> EveryKth(k=2).spec()
        '{"operator": "EveryKth", "dim": null, "k": 2, "offset": 0, "variables": null}'
        >>> operator_from_spec(EveryKth(k=2).spec())
        EveryKth(k=2)
        """
        params = {
            k: (json.loads(v.spec()) if isinstance(v, ObservationOperator) else v)
            for k, v in self.get_params(deep=False).items()
        }
        return json.dumps({"operator": type(self).__name__, **params}, default=str)


def _locate(layout, idx):
    """Variable name and integer position along each spatial dim, per flat index."""
    starts = np.cumsum([0] + [v.size for v in layout])
    names = []
    dims = sorted({d for v in layout for d in v.dims})
    pos = {d: np.full(len(idx), -1, dtype=np.int64) for d in dims}
    for i, flat in enumerate(idx):
        j = int(np.searchsorted(starts, flat, side="right") - 1)
        v = layout[j]
        names.append(v.name)
        if v.dims:
            for d, p in zip(v.dims, np.unravel_index(int(flat - starts[j]), v.shape)):
                pos[d][i] = p
    return names, pos


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
        Restrict to these variables (default: every variable with ``dim``).

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
        Number of observed grid points per variable.
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
        out, start = [], 0
        for v in layout:
            if names is None or v.name in names:
                if n_points > v.size:
                    raise ValueError(
                        f"n_points={self.n_points} exceeds the {v.size} points of {v.name!r}")
                # a fresh generator per variable: every field is seen at the same points
                local = check_random_state(self.random_state)
                out.append(start + np.sort(local.choice(v.size, n_points, replace=False)))
            start += v.size
        return np.concatenate(out)


class Squared(ObservationOperator):
    """Nonlinear operator: the square of another operator's observations (``x**2``).

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz63
    >>> op = Squared(SelectVariables("x"))
    >>> op.apply(torch.tensor([[2.0, 1.0, 0.0]]), Lorenz63()).tolist()
    [[4.0]]
    """

    linear = False

    def __init__(self, base=None):
        self.base = base

    def _base(self):
        return Identity() if self.base is None else self.base

    def indices(self, layout):
        return self._base().indices(layout)

    def _transform(self, z):
        return z**2


def make_operator(spec) -> ObservationOperator:
    """Build an operator from a short spec.

    ``"identity"`` / ``None``; a variable name or list of names; ``"x^2"`` or
    ``"x2"`` (squared variable); ``"every4"`` (every 4th site); or an operator.

    Examples
    --------
    >>> make_operator("every4")
    EveryKth()
    >>> make_operator(["x", "y"])
    SelectVariables(variables=['x', 'y'])
    """
    if isinstance(spec, ObservationOperator):
        return spec
    if spec is None or spec == "identity" or spec == "all":
        return Identity()
    if isinstance(spec, str):
        if spec.endswith("^2") or spec.endswith("**2") or (spec.endswith("2") and len(spec) == 2):
            return Squared(SelectVariables(spec.rstrip("^*2")))
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


def registered_operators() -> dict[str, type]:
    """Observation operator classes :func:`operator_from_spec` can rebuild, by name.

    Every subclass of :class:`ObservationOperator` is registered when it is defined.

    Examples
    --------
    >>> {"Identity", "EveryKth", "Squared"} <= set(registered_operators())
    True
    """
    return OPERATORS.by_class_name()


def operator_from_spec(spec) -> ObservationOperator:
    """Rebuild an operator from the JSON ``spec()`` stored in observation attrs.

    Nested operators (a parameter written as ``{"operator": ...}``, such as
    :class:`Squared`'s ``base``) are rebuilt too. Custom operators are found by
    their class name once the class is defined (see :class:`ObservationOperator`).

    Raises
    ------
    ValueError
        The spec is not JSON or names an operator class that is not defined
        in this session.

    Examples
    --------
    >>> operator_from_spec(EveryKth(4).spec())
    EveryKth()
    >>> operator_from_spec(Squared(SelectVariables("x")).spec())
    Squared(base=SelectVariables())
    """
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise ValueError(f"observation operator spec is not JSON: {spec!r} ({exc})") from exc
    if not isinstance(spec, dict) or "operator" not in spec:
        raise ValueError(f"an observation operator spec needs an 'operator' key, got {spec!r}")
    spec = dict(spec)
    name = spec.pop("operator")
    try:
        cls = OPERATORS.get(name)
    except ValueError:
        raise ValueError(
            f"unknown observation operator {name!r} in spec; known: {sorted(registered_operators())}. "
            f"A custom operator is rebuilt once its class (a subclass of "
            f"xdyn.observe.ObservationOperator named {name!r}) is defined or imported; "
            f"or pass operator=... explicitly."
        ) from None
    params = {
        k: operator_from_spec(v) if isinstance(v, dict) and "operator" in v else v
        for k, v in spec.items()
    }
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"cannot rebuild observation operator {name!r} from spec parameters "
            f"{sorted(params)}: {exc}"
        ) from exc


def observe(
    ds: xr.Dataset,
    operator="identity",
    noise_std=1.0,
    every: int = 1,
    times=None,
    missing_fraction: float = 0.0,
    random_state=None,
    sample_dims: Sequence[str] = SAMPLE_DIMS,
) -> xr.Dataset:
    """Draw noisy synthetic observations of a state Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Truth, with a ``time`` dim (and optionally ``trajectory`` / ``member``).
        Its data variables with a ``time`` dim are the state; others (a
        per-trajectory parameter) are not observed.
    operator : ObservationOperator or spec, default="identity"
        See :func:`make_operator`.
    noise_std : float or array of shape (n_obs,), default=1
        Standard deviation of the additive Gaussian observation error.
    every : int, default=1
        Observe every ``every``-th state time (ignored when ``times`` is given).
    times : array-like, optional
        Explicit (possibly irregular) subset of ``ds.time`` to observe.
    missing_fraction : float, default=0
        Fraction of observations randomly set missing (NaN).
    random_state : int, RandomState or None
        Seed for the noise and the missing pattern.

    Returns
    -------
    xarray.Dataset
        Variable ``observation`` with dims ``(..., time, obs)``, clean values in
        ``observation_clean``, coordinates ``variable``, ``state_index`` and the
        spatial position of each observation; the operator and noise in attrs.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96().simulate(n_steps=20, random_state=0)
    >>> obs = observe(truth, "every4", noise_std=1.0, every=2, random_state=0)
    >>> dict(obs.sizes)
    {'time': 11, 'obs': 10}
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"observe expects an xarray.Dataset, got {type(ds).__name__}")
    if "time" not in ds.dims:
        raise ValueError(f"the Dataset has no 'time' dim (dims: {tuple(ds.dims)})")
    if not 0.0 <= _check_real(missing_fraction, "missing_fraction", "real", "observe") <= 1.0:
        raise ValueError(f"missing_fraction must be in [0, 1], got {missing_fraction}")
    op = make_operator(operator)
    rng = check_random_state(random_state)
    if times is not None:
        try:
            ds = ds.sel(time=np.atleast_1d(np.asarray(times)))
        except KeyError as exc:
            raise ValueError(
                f"observe: some of times are not times of the Dataset ({exc}; it runs "
                f"{ds['time'].values[0]} .. {ds['time'].values[-1]}); pick them from ds.time"
            ) from exc
    else:
        every = _check_int(every, "every", 1, "observe")
        ds = ds.isel(time=slice(None, None, every))
    # variables without a time dim (per-trajectory parameters such as a Reynolds
    # number) are not part of the observed state
    ds = ds[[k for k, v in ds.data_vars.items() if "time" in v.dims]]
    layout = layout_from_dataset(ds, sample_dims)
    lead = [d for d in ds[layout[0].name].dims if d in sample_dims]
    values, lead = flatten_variables(ds, layout, lead)
    x = torch.as_tensor(np.array(values))  # a copy: the view may be read-only
    clean = op.apply(x, layout).numpy()
    if clean.shape[-1] == 0:
        raise ValueError(f"observe: operator {op!r} observes nothing of this state")
    try:
        std = np.asarray(noise_std, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"observe: noise_std must be a number or an array of numbers, got {noise_std!r}"
        ) from exc
    if std.ndim > 1 or (std.ndim == 1 and std.shape[0] not in (1, clean.shape[-1])):
        raise ValueError(
            f"noise_std must be a scalar or have one value per observation ({clean.shape[-1]}), "
            f"got shape {std.shape}")
    std = np.broadcast_to(std, clean.shape[-1:])
    if np.any(std < 0) or not np.all(np.isfinite(std)):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    y = clean + std * rng.standard_normal(clean.shape)
    if missing_fraction:
        y[rng.uniform(size=y.shape) < float(missing_fraction)] = np.nan
    coords = op.obs_coords(layout)
    # Spatial coords along ``obs`` carry the state's coordinate *values* (so that
    # ``truth.sel(x=obs.x)`` is right on physical grids); ``<dim>_index`` keeps
    # the integer grid position for ``isel``.
    for v in layout:
        for d in v.dims:
            if d in coords and f"{d}_index" not in coords:
                pos = coords[d][1]
                coords[f"{d}_index"] = ("obs", pos)
                if d in ds.coords:
                    values = ds[d].values
                    safe = np.clip(pos, 0, len(values) - 1)
                    located = np.where(pos >= 0, values[safe], np.nan if values.dtype.kind == "f" else -1)
                    coords[d] = ("obs", located, dict(ds[d].attrs))
    coords.update({d: ds[d] for d in lead if d in ds.coords})
    attrs_common = {"units": _common_units(layout)}
    out = xr.Dataset(
        {
            "observation": (tuple(lead) + ("obs",), y, {**attrs_common, "long_name": "noisy observation"}),
            "observation_clean": (tuple(lead) + ("obs",), clean, {**attrs_common, "long_name": "observation without noise"}),
            "noise_std": ("obs", np.array(std), {**attrs_common, "long_name": "observation error standard deviation"}),
        },
        coords=coords,
    )
    out.attrs.update({k: v for k, v in ds.attrs.items()})
    out.attrs.update({
        "operator": op.spec(),
        "obs_noise_std": float(np.mean(std)),
        "obs_every": int(every) if times is None else "irregular",
        "obs_random_state": "None" if not isinstance(random_state, (int, np.integer)) else int(random_state),
        "missing_fraction": float(missing_fraction),
    })
    return out


def _common_units(layout):
    units = {v.attrs.get("units", "1") for v in layout}
    return units.pop() if len(units) == 1 else "mixed"
