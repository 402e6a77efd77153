"""The observation operator base class, its registry, and rebuilding operators from attrs."""

from __future__ import annotations

import json

import numpy as np
import torch
from sklearn.base import BaseEstimator

from xdyn._registry import Registry
from xdyn.observe._layout import _layout
from xdyn.utils._json import plain, read_legacy_strings

__all__ = ["OPERATORS", "ObservationOperator", "operator_from_spec", "registered_operators"]

# Every ObservationOperator subclass, by class name: what ``operator_from_spec``
# rebuilds from the ``operator`` attr of an observation Dataset.
OPERATORS = Registry("observation operator", warn_unnamed=True)


class ObservationOperator(BaseEstimator):
    """Base class: observe a subset of the flat state, optionally transformed.

    Subclasses implement :meth:`indices`, which xdyn calls with the state
    layout: a list of :class:`~xdyn.systems.StateVariable` (name, dims, shape)
    in flat-state order. Nonlinear ones also override :meth:`_transform` (a
    differentiable torch function of the selected components), set
    ``linear = False`` and override :meth:`obs_units` if they know what they
    do to the units (without it their observations get no ``units`` attr).
    Parameters go in ``__init__`` and
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

    >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
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
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
        >>> from xdyn.systems import Lorenz96
        >>> EveryKth(k=4).indices(Lorenz96(n=8).variables)
        array([0, 4])
        """
        raise NotImplementedError

    def _transform(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def obs_units(self, units):
        """Units of the observations of state entries in ``units``.

        Parameters
        ----------
        units : str or None
            The units of the observed state entries (None: unknown).

        Returns
        -------
        str or None
            ``units`` for a selection (a ``linear`` operator). A nonlinear
            operator that does not override this returns None (unknown): its
            observations get no ``units`` attr rather than the state's.

        Examples
        --------
        >>> from xdyn.observe import Arctan, EveryKth, Squared
        >>> EveryKth(k=4).obs_units("m s-1"), Squared().obs_units("m s-1")
        ('m s-1', 'm2 s-2')
        >>> Arctan(Squared()).obs_units("K"), Squared(Arctan()).obs_units("K")
        ('1', '1')
        """
        return units if self.linear else None

    def n_obs(self, layout) -> int:
        """Number of observations per time.

        ``layout``: a system, a state Dataset or a list of StateVariable.

        Examples
        --------
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
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
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
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
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
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

        ``layout``: a system, a state Dataset or a list of StateVariable.

        Returns
        -------
        dict
            ``name -> ("obs", values)`` for ``obs``, ``variable``, ``state_index``
            and each spatial dim of the layout, whose values are grid positions
            (integers). An observation of a variable without that dim (a scalar
            beside fields, two-scale Lorenz-96's slow ``x`` along ``j``) has NaN
            there, and that dim's positions are then floats.

        Examples
        --------
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
        >>> from xdyn.systems import Lorenz96
        >>> coords = EveryKth(k=4).obs_coords(Lorenz96(n=8))
        >>> coords["variable"][1].tolist(), coords["k"][1].tolist()
        (['x', 'x'], [0, 4])
        >>> from xdyn.systems import TwoScaleLorenz96
        >>> coords = Identity().obs_coords(TwoScaleLorenz96(K=4, J=2))
        >>> coords["variable"][1][3:6].tolist(), coords["j"][1][3:6].tolist()
        (['x', 'y', 'y'], [nan, 0.0, 1.0])
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
        >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
        >>> EveryKth(k=2).spec()
        '{"operator": "EveryKth", "dim": null, "k": 2, "offset": 0, "variables": null}'
        >>> operator_from_spec(EveryKth(k=2).spec())
        EveryKth(k=2)
        """
        params = {
            k: (json.loads(v.spec()) if isinstance(v, ObservationOperator) else v)
            for k, v in self.get_params(deep=False).items()
        }
        # numpy values as numbers and lists (default=str wrote "3" for np.int64(3), which
        # operator_from_spec could not rebuild)
        return json.dumps({"operator": type(self).__name__, **plain(params)})


def _locate(layout, idx):
    """Variable name and grid position along each spatial dim, per flat index.

    A position is an int64 array, or float64 with NaN at the observations of a
    variable without that dim: no grid position (``-1`` would be the last one
    to ``isel``).
    """
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
    pos = {d: np.where(p >= 0, p, np.nan) if np.any(p < 0) else p for d, p in pos.items()}
    return names, pos


def registered_operators() -> dict[str, type]:
    """Observation operator classes :func:`operator_from_spec` can rebuild, by name.

    Every subclass of :class:`ObservationOperator` is registered when it is defined.

    Examples
    --------
    >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
    >>> {"Identity", "EveryKth", "Squared"} <= set(registered_operators())
    True
    """
    return OPERATORS.by_class_name()


def operator_from_spec(spec) -> ObservationOperator:
    """Rebuild an operator from the JSON ``spec()`` stored in observation attrs.

    Nested operators (a parameter written as ``{"operator": ...}``, such as
    :class:`Squared`'s ``base``) are rebuilt too. Custom operators are found by
    their class name once the class is defined (see :class:`ObservationOperator`).

    Parameters
    ----------
    spec : str or dict
        ``{"operator": class name, **parameters}`` as ``ObservationOperator.spec()``
        returns it, or its JSON text.

    Returns
    -------
    ObservationOperator

    Raises
    ------
    ValueError
        The spec is not JSON or names an operator class that is not defined
        in this session.

    Examples
    --------
    >>> from xdyn.observe import EveryKth, Identity, SelectVariables, Squared, observe
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
    params = read_legacy_strings(cls, params, f"observation operator {name!r}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"cannot rebuild observation operator {name!r} from spec parameters "
            f"{sorted(params)}: {exc}"
        ) from exc
