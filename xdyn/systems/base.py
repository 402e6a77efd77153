"""Base class shared by every dynamical system in :mod:`xdyn.systems`.

A system holds its physical parameters, a batched and differentiable
right-hand side ``rhs(t, x)`` in torch (leading dimensions are batch), a default
time stepper and the conversion between its flat state tensor and a labelled
:class:`xarray.Dataset` (see ``DESIGN.md``: Systems, Data model).

The flat state is the concatenation of every state variable flattened over
its own spatial dims, in the order of :attr:`DynamicalSystem.variables`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from xdyn._labels import grid_order
from xdyn._registry import Registry
from xdyn._threads import threads_for
from xdyn.utils._json import plain
from xdyn.utils._torch import resolve_device, resolve_dtype  # noqa: F401  (re-exported: cli, systems)
from xdyn.preprocessing.stacking import flatten_variables, unflatten_variables
from xdyn.systems._simulate import burn_in_steps, initial_states, saved_steps, seed_record
from xdyn.systems._validation import _check_constraint, _check_int, _check_real
from xdyn.systems.integrators import rk4_step, rk4_step_numpy

__all__ = ["DynamicalSystem", "StateVariable", "resolve_device", "resolve_dtype"]

# Every system class that declares a ``name``, filled by DynamicalSystem.__init_subclass__
SYSTEMS = Registry("system")


@dataclasses.dataclass(frozen=True)
class StateVariable:
    """One labelled variable of a system's state.

    Parameters
    ----------
    name : str
        Variable name in the Dataset (``"x"``, ``"u"``, ``"vorticity"`` ...).
    dims : tuple of str
        Its spatial dims (empty for a scalar component such as Lorenz-63 ``x``).
    shape : tuple of int
        Sizes of ``dims``.
    attrs : dict
        CF attributes: ``units``, ``long_name`` and ``standard_name`` where one exists.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> Lorenz96(n=8).variables
    [StateVariable(name='x', dims=('k',), shape=(8,), attrs={'units': '1', 'long_name': 'Lorenz-96 slow variable'})]
    >>> StateVariable("u", ("y", "x"), (16, 32)).size
    512
    """

    name: str
    dims: tuple = ()
    shape: tuple = ()
    attrs: dict = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))  # not np.prod: forecast checks it at every call

    @property
    def feature_dims(self) -> tuple:
        """The dims flattened into the state vector: :attr:`dims` (the layout-record name
        :func:`xdyn.preprocessing.stacking.flatten_variables` reads)."""
        return tuple(self.dims)


class DynamicalSystem(BaseEstimator):
    """Base class for dynamical systems.

    Subclasses set ``name``, ``default_dt`` and ``integrator``; implement
    :meth:`rhs`, :meth:`_variables` and :meth:`random_initial_state`; and may
    override :meth:`step` (e.g. ETDRK4 for stiff spectral PDEs) and
    :meth:`coords` (spatial coordinates). A system whose time has physical
    units (``time_units``) also sets ``climatology_spin_up`` and
    ``climatology_burn_in`` (default 40 and 10 model time units): how long
    :mod:`xdyn.systems.climatology` runs its random initial states onto the
    attractor.

    Subclassing :class:`sklearn.base.BaseEstimator` gives ``get_params`` /
    ``set_params``, so a system inside an assimilator is tunable with
    ``system__F=...`` in a grid search and is cloned with it.

    Parameter checks are declared, not written per system: a subclass lists its
    constructor parameters in ``_parameter_constraints`` (name -> ``"int>=N"``,
    ``"real"``, ``"real>0"``, ``"real>=0"`` or ``"bool"``), and :meth:`validate_params`
    checks them. As in scikit-learn,
    ``__init__`` and ``set_params`` only store values (so ``clone`` and grid
    searches work); the check runs when the system is used: by
    :attr:`variables` (hence ``n_state``, ``to_state``, ``from_state``, every
    assimilator) and :meth:`simulate`. Array or tensor values (a learnable
    parameter, one value per trajectory) are left to the system.

    Parameters
    ----------
    **params
        The base class takes none. A subclass's ``__init__`` takes its physical
        parameters (``F``, ``sigma`` ...) as keyword arguments, stores them
        unchanged under the same names and declares them in
        ``_parameter_constraints``.
    dtype : str or torch.dtype, default "float64"
        Optional in a subclass: the float type of its tensors, read through
        :attr:`torch_dtype` (float64 when the subclass has no ``dtype``).
    device : str or torch.device, default "cpu"
        Optional in a subclass: where its tensors live (``"auto"``: CUDA when
        present), read through :attr:`torch_device` (CPU when it has none).

    Examples
    --------
    A hand-written system needs ``rhs``, ``_variables`` and
    ``random_initial_state`` (see the user guide, "Your own model and
    observation operator"):

    >>> import numpy as np, torch
    >>> from sklearn.utils import check_random_state
    >>> class Decay(DynamicalSystem):
    ...     name = "decay"
    ...     _parameter_constraints = {"rate": "real>0"}
    ...     def __init__(self, rate=1.0):
    ...         self.rate = rate
    ...     def rhs(self, t, x):
    ...         return -self.rate * x
    ...     def _variables(self):
    ...         return [StateVariable("c", attrs={"units": "1", "long_name": "concentration"})]
    ...     def random_initial_state(self, n, random_state=None):
    ...         return check_random_state(random_state).uniform(1.0, 2.0, size=(n, 1))
    >>> ds = Decay(rate=0.5).simulate(t_span=1.0, dt=0.1, x0=[1.0])
    >>> round(float(ds.c[-1]), 6), round(float(np.exp(-0.5)), 6)
    (0.606531, 0.606531)
    >>> Decay(rate=-1.0).simulate(n_steps=1)
    Traceback (most recent call last):
    ...
    ValueError: Decay: rate must be a positive finite number, got -1.0
    """

    name = "system"
    default_dt = 0.01
    integrator = "rk4"
    time_units = "1"  # non-dimensional model time
    # Time, in ``time_units``, that the climatology (xdyn.systems.climatology) runs the
    # draws of random_initial_state before its pool of states (``climatology_spin_up``)
    # and before sampling a free run (``climatology_burn_in``). Model time units suit
    # the nondimensional systems; a system with physical time sets its own.
    climatology_spin_up = 40.0
    climatology_burn_in = 10.0
    presets: dict[str, dict[str, Any]] = {}
    _parameter_constraints: dict[str, str] = {}
    aliases: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        # A subclass that declares ``name`` registers itself (with its aliases and class
        # name): ``make_system`` finds it, and ``system_from_attrs`` rebuilds it from
        # the class name a Dataset's attrs record.
        super().__init_subclass__(**kwargs)
        SYSTEMS.add(cls)

    # --- to implement -----------------------------------------------------
    def rhs(self, t, x: torch.Tensor) -> torch.Tensor:
        """Time derivative of the flat state ``x`` of shape ``(..., n_state)``.

        Systems are autonomous: the integrators pass ``t`` measured from the
        start of each step (0, ``dt / 2``, ``dt``), not model time, so a
        time-varying forcing belongs in the state, not in ``t``.

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> Lorenz63().rhs(0.0, torch.ones(3, dtype=torch.float64)).tolist()
        [0.0, 26.0, -1.6667]
        """
        raise NotImplementedError

    def _variables(self) -> list[StateVariable]:
        raise NotImplementedError

    def random_initial_state(self, n: int, random_state=None) -> np.ndarray:
        """Draw ``n`` initial states, shape ``(n, n_state)`` (numpy, float64).

        ``random_state`` is anything :func:`sklearn.utils.check_random_state`
        takes: an int seed, a :class:`numpy.random.RandomState` or None.
        :meth:`simulate` and the assimilators pass the ``RandomState`` they draw
        from (so one seed gives one reproducible sequence); an implementation
        starts with ``rng = check_random_state(random_state)`` and draws from
        ``rng`` only (never the global numpy RNG).

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> x0 = Lorenz96(n=8).random_initial_state(2, random_state=0)
        >>> x0.shape, x0.dtype
        ((2, 8), dtype('float64'))
        """
        raise NotImplementedError

    def coords(self) -> dict[str, Any]:
        """Spatial coordinates of the state dims (name -> array or DataArray).

        Examples
        --------
        >>> from xdyn.systems import Lorenz63, Lorenz96
        >>> Lorenz96(n=4).coords()["k"]
        ('k', array([0, 1, 2, 3]), {'long_name': 'site index'})
        >>> Lorenz63().coords()  # scalar components: no spatial dims
        {}
        """
        return {}

    # --- shared machinery -------------------------------------------------
    def validate_params(self) -> None:
        """Check the constructor parameters against ``_parameter_constraints``.

        Raises
        ------
        TypeError
            A parameter that must be an integer or a number is not one.
        ValueError
            A parameter is out of range (a size below 1, a negative rate ...), or
            the system's ``dtype`` is not a floating dtype.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> Lorenz96(n=0).validate_params()
        Traceback (most recent call last):
        ...
        ValueError: Lorenz96: n must be an integer >= 4, got 0
        """
        who = type(self).__name__
        for name, kind in self._parameter_constraints.items():
            value = getattr(self, name)
            if isinstance(value, (torch.Tensor, np.ndarray, list, tuple)):
                continue  # per-trajectory or learnable values: the system checks them
            _check_constraint(value, name, kind, who)
        self.torch_dtype  # noqa: B018  (refuses a dtype that is not floating)

    @property
    def variables(self) -> list[StateVariable]:
        """The labelled state variables, in flat-state order."""
        self.validate_params()
        return self._variables()

    @property
    def n_state(self) -> int:
        """Length of the flat state vector."""
        return sum(v.size for v in self.variables)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The resolved ``dtype``; a ValueError unless it is floating (an integer state
        would truncate the state and the parameters, e.g. beta = 8/3 to 2)."""
        dtype = resolve_dtype(getattr(self, "dtype", torch.float64))
        if not dtype.is_floating_point:
            raise ValueError(f"{type(self).__name__}: dtype must be a floating dtype "
                             f"(e.g. float64, float32), got {getattr(self, 'dtype', None)!r}")
        return dtype

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "cpu"))

    @classmethod
    def preset(cls, name: str, **overrides):
        """A system configured as in a published setup, e.g. ``Lorenz96.preset("sakov2008")``.

        Parameters
        ----------
        name : str
            A key of the class's ``presets``.
        **overrides
            Constructor parameters that replace the preset's.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> Lorenz96.preset("sakov2008")
        Lorenz96()
        >>> Lorenz96.preset("sakov2008", F=10.0).F
        10.0
        >>> Lorenz96.preset("sakov2009")
        Traceback (most recent call last):
        ...
        ValueError: unknown preset 'sakov2009' for Lorenz96; available: ['lorenz1996', 'sakov2008']
        """
        if name not in cls.presets:
            raise ValueError(
                f"unknown preset {name!r} for {cls.__name__}; "
                f"available: {sorted(cls.presets)}"
            )
        params = {k: v for k, v in cls.presets[name].items() if not k.startswith("_")}
        params.update(overrides)
        return cls(**params)

    @classmethod
    def preset_settings(cls, name: str) -> dict:
        """Simulation settings recorded with a preset (``dt``, ``burn_in`` ...).

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> Lorenz96.preset_settings("sakov2008")
        {'dt': 0.05}

        The paper's observation setup is in :mod:`xdyn.experiments.setups`.
        """
        if name not in cls.presets:
            raise ValueError(f"unknown preset {name!r} for {cls.__name__}")
        return {k[1:]: v for k, v in cls.presets[name].items() if k.startswith("_")}

    def as_tensor(self, x) -> torch.Tensor:
        """Convert array-like ``x`` to a tensor with the system's dtype and device.

        Examples
        --------
        >>> from xdyn.systems import Lorenz63
        >>> Lorenz63().as_tensor([1, 2, 3])
        tensor([1., 2., 3.], dtype=torch.float64)
        """
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()  # torch cannot wrap read-only memory (e.g. a broadcast view)
        return torch.as_tensor(x, dtype=self.torch_dtype, device=self.torch_device)

    def step(self, x: torch.Tensor, dt: float) -> torch.Tensor:
        """Advance ``x`` (shape ``(..., n_state)``) by one step of size ``dt``.

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> x = torch.ones(5, 3, dtype=torch.float64)  # a batch of 5 states
        >>> Lorenz63().step(x, 0.01).shape
        torch.Size([5, 3])
        """
        return rk4_step(self.rhs, 0.0, x, dt)

    # Systems whose ``rhs`` also runs on numpy arrays set this; tiny states then
    # integrate in numpy when no gradient is wanted: torch's per-op dispatch costs
    # more than the arithmetic on a 3- or 40-vector (5x slower than numpy for L63).
    supports_numpy = False
    numpy_fast_path_max_size = 4096
    # Optional ``componentwise_tendency(*components)`` on scalars, for systems of a
    # few variables (Lorenz-63): lets tiny batches integrate in plain Python.
    componentwise_tendency = None

    def _use_numpy(self, x) -> bool:
        return (
            self.supports_numpy
            and type(self).step is DynamicalSystem.step
            and isinstance(x, torch.Tensor)
            and x.device.type == "cpu"
            and x.numel() <= self.numpy_fast_path_max_size
            and not (torch.is_grad_enabled() and x.requires_grad)
            and self._has_scalar_parameters()
        )

    def _has_scalar_parameters(self) -> bool:
        """Whether every parameter of ``_parameter_constraints`` is a plain number.

        Not a torch tensor (a learnable one, ``requires_grad``) nor an array or list
        (one value per trajectory): the numpy fast paths read parameters as Python
        floats, which drops a gradient or fails on one value per state, so such a
        system integrates in torch.
        """
        for name in self._parameter_constraints:  # a loop: checked at every forecast call
            value = getattr(self, name, None)
            # the kinds validate_params leaves to the system; a plain float costs one isinstance
            if isinstance(value, (torch.Tensor, np.ndarray, list, tuple)) and (
                    isinstance(value, torch.Tensor) or np.ndim(value) > 0):
                return False
        return True

    def parameter(self, name: str, x: torch.Tensor):
        """Value of parameter ``name`` to combine with the state ``x`` in :meth:`rhs`.

        A plain number comes back as a Python float; a tensor, array or list (one
        value per trajectory, or a learnable tensor) as a tensor of ``x``'s dtype
        and device, so that it neither promotes a float32 state to float64 nor
        meets numpy on the left of a tensor operation. It combines with the state
        by broadcasting, aligned on the last batch dim: for states of shape
        ``(n_trajectories, n_members, n_state)`` one value per trajectory has
        shape ``(n_trajectories, 1)`` (a flat ``(n_trajectories,)`` would pair
        with the members).

        Examples
        --------
        >>> import numpy as np, torch
        >>> from xdyn.systems import Lorenz63
        >>> x = torch.zeros(2, 3, dtype=torch.float32)
        >>> Lorenz63(sigma=np.array([10.0, 12.0])).parameter("sigma", x)
        tensor([10., 12.])
        >>> Lorenz63().parameter("sigma", x)
        10.0
        """
        value = getattr(self, name)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
        return torch.as_tensor(value, dtype=x.dtype, device=x.device)

    def _check_state(self, x) -> None:
        """Refuse a state whose last axis is not ``n_state`` (in ``forecast`` and ``integrate``;
        ``step``, the inner loop, is not checked), which would otherwise run silently as
        another system (a Lorenz-96 ring of 7 sites) or fail deep in a reshape."""
        # _variables, not n_state: n_state also validates every parameter, which costs as
        # much as a small forecast; it only words the error
        if x.ndim == 0 or x.shape[-1] != sum(v.size for v in self._variables()):
            raise ValueError(f"{type(self).__name__}: the state has shape {tuple(x.shape)}, "
                             f"not (..., n_state) with n_state={self.n_state}")

    def _forecast_steps(self, x, n_steps) -> int:
        """The checks of every ``forecast``: ``n_steps`` as an int >= 0, ``x`` a state."""
        n_steps = _check_int(n_steps, "n_steps", 0)
        self._check_state(x)
        return n_steps

    def forecast(self, x: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
        """Advance ``x`` by ``n_steps`` steps of ``dt`` (no intermediate output).

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> system, x = Lorenz63(), torch.ones(3, dtype=torch.float64)
        >>> torch.allclose(system.forecast(x, 0.01, 2), system.step(system.step(x, 0.01), 0.01))
        True
        """
        n_steps = self._forecast_steps(x, n_steps)
        if self._use_numpy(x) and n_steps > 0:
            z = x.detach().numpy()
            # overflow is reported by the callers' finiteness checks (DivergenceError)
            with np.errstate(over="ignore", invalid="ignore"):
                for _ in range(n_steps):
                    z = rk4_step_numpy(self.rhs, 0.0, z, dt)
            return torch.from_numpy(z)
        for _ in range(n_steps):
            x = self.step(x, dt)
        return x

    def integrate(
        self,
        x0: torch.Tensor,
        dt: float,
        n_steps: int,
        save_every: int = 1,
        progress: bool = False,
    ) -> torch.Tensor:
        """Integrate and return saved states, shape ``(n_saved, ..., n_state)``.

        The initial state is saved first; then every ``save_every``-th step.

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> Lorenz63().integrate(torch.ones(4, 3), dt=0.01, n_steps=10, save_every=5).shape
        torch.Size([3, 4, 3])
        """
        n_steps = _check_int(n_steps, "n_steps", 0)
        save_every = _check_int(save_every, "save_every", 1)
        x = self.as_tensor(x0)
        self._check_state(x)
        numpy_path = self._use_numpy(x)
        if numpy_path:
            x = x.numpy()
        out = [x]
        iterator = range(1, int(n_steps) + 1)
        if progress:
            iterator = tqdm(iterator, desc=f"{self.name}", leave=False)
        for i in iterator:
            if numpy_path:
                with np.errstate(over="ignore", invalid="ignore"):
                    x = rk4_step_numpy(self.rhs, 0.0, x, dt)
            else:
                x = self.step(x, dt)
            if i % save_every == 0:
                out.append(x)
        return torch.from_numpy(np.stack(out)) if numpy_path else torch.stack(out)

    def jacobian(self, x: torch.Tensor, t: float = 0.0) -> torch.Tensor:
        """Jacobian ``d rhs / d x`` at ``x`` by autodiff, shape ``(..., n_state, n_state)``.

        Examples
        --------
        Lorenz-63 at ``(1, 1, 1)``: ``[[-sigma, sigma, 0], [rho - z, -1, -x], [y, x, -beta]]``

        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> Lorenz63().jacobian(torch.ones(3)).tolist()
        [[-10.0, 10.0, 0.0], [27.0, -1.0, -1.0], [1.0, 1.0, -2.6667]]
        """
        return _batched_jacobian(lambda z: self.rhs(t, z), self.as_tensor(x))

    def step_jacobian(self, x: torch.Tensor, dt: float) -> torch.Tensor:
        """Jacobian of one :meth:`step` (the tangent linear model), ``(..., n, n)``.

        Examples
        --------
        Column ``j`` is the derivative of one step along the ``j``-th state
        direction (here against central finite differences):

        >>> import torch
        >>> from xdyn.systems import Lorenz63
        >>> system, x, eps = Lorenz63(), torch.ones(3, dtype=torch.float64), 1e-6
        >>> M = system.step_jacobian(x, 0.01)
        >>> fd = torch.stack([(system.step(x + eps * e, 0.01) - system.step(x - eps * e, 0.01))
        ...                   / (2 * eps) for e in torch.eye(3, dtype=torch.float64)], dim=-1)
        >>> torch.allclose(M, fd, atol=1e-8)
        True
        """
        return _batched_jacobian(lambda z: self.step(z, dt), self.as_tensor(x))

    # --- Dataset <-> tensor ----------------------------------------------
    def to_state(self, ds: xr.Dataset) -> torch.Tensor:
        """Flat state tensor from a Dataset of this system.

        Dims of ``ds`` other than the state's spatial dims lead, in the order
        they appear on the first variable (``time``, ``member``, ...).

        Examples
        --------
        >>> from xdyn.systems import Lorenz63
        >>> system = Lorenz63()
        >>> ds = system.simulate(n_steps=4, random_state=0)
        >>> x = system.to_state(ds)
        >>> x.shape  # (time, n_state)
        torch.Size([5, 3])
        >>> back = system.from_state(x, dims=("time",), coords={"time": ds.time})
        >>> bool((back.z == ds.z).all())
        True
        """
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"{self.name}.to_state expects an xarray.Dataset, got {type(ds).__name__}")
        ds = self.to_grid_order(ds)
        try:
            values, _ = flatten_variables(ds, self.variables)
        except ValueError as exc:
            raise ValueError(f"{self.name} state: {exc}") from None
        return self.as_tensor(np.array(values))  # a copy: the view may be read-only

    def to_grid_order(self, ds: xr.Dataset) -> xr.Dataset:
        """``ds`` with each grid dim's labels in the system's order.

        Labels that are the system's in another order (e.g. descending) are reordered;
        other labels are an error. A state is read by position: a reversed grid would
        be read mirrored. Labels equal up to float32 rounding count as the grid's.

        Parameters
        ----------
        ds : xarray.Dataset
            Fields on the system's grid dims (others pass through).

        Returns
        -------
        xarray.Dataset
            ``ds``, reindexed by position where its labels were in another order.

        Raises
        ------
        ValueError
            If a grid dim's labels are not the system's.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> system = Lorenz96(n=8)
        >>> ds = system.simulate(n_steps=2, random_state=0)
        >>> flipped = ds.isel(k=slice(None, None, -1))
        >>> bool((system.to_grid_order(flipped).x == ds.x).all())
        True
        """
        for dim, coord in self.coords().items():
            if dim not in ds.indexes:
                continue
            want = np.asarray(coord[1] if isinstance(coord, tuple) else coord)
            got = np.asarray(ds.indexes[dim])
            if want.ndim != 1 or not np.issubdtype(want.dtype, np.number) or \
                    not np.issubdtype(got.dtype, np.number) or got.shape != want.shape:
                continue  # sizes are checked when the state is flattened
            # labels equal up to float32 rounding (data read back from a file) are the grid's
            order = grid_order(got, want, rtol=1e-6, atol=1e-9 * float(np.abs(want).max()))
            if order is None:
                raise ValueError(f"{self.name} state: the {dim!r} labels {got[:6].tolist()} "
                                 f"are not the system's grid {want[:6].tolist()}")
            if not np.array_equal(order, np.arange(len(order))):
                ds = ds.isel({dim: order})
        return ds

    def from_state(
        self,
        x,
        dims: Sequence[str] = (),
        coords: dict | None = None,
        attrs: dict | None = None,
    ) -> xr.Dataset:
        """Dataset from a flat state of shape ``(*lead, n_state)``.

        ``dims`` names the leading dims (e.g. ``("time",)`` or ``("member",)``).

        Examples
        --------
        >>> import torch
        >>> from xdyn.systems import Lorenz96
        >>> ds = Lorenz96(n=8).from_state(torch.zeros(2, 8), dims=("member",))
        >>> ds.x.dims, ds.x.attrs["long_name"], ds.attrs["system"]
        (('member', 'k'), 'Lorenz-96 slow variable', 'Lorenz96')
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        dims = tuple(dims)
        if x.ndim != len(dims) + 1 or x.shape[-1] != self.n_state:
            raise ValueError(
                f"state of shape {x.shape} does not match leading dims {dims} "
                f"and n_state={self.n_state}"
            )
        data_vars = unflatten_variables(x, self.variables, dims)
        all_coords = dict(self.coords())
        all_coords.update(coords or {})
        used = set(dims).union(*[v.dims for v in self.variables])
        all_coords = {k: c for k, c in all_coords.items() if _coord_dims(k, c) <= used}
        ds = xr.Dataset(data_vars, coords=all_coords)
        ds.attrs.update(self.describe())
        ds.attrs.update(attrs or {})
        return ds

    def describe(self) -> dict:
        """netCDF-safe attrs that record the system and its parameters.

        Examples
        --------
        >>> from xdyn.systems import Lorenz96
        >>> Lorenz96(n=8).describe()
        {'system': 'Lorenz96', 'system_params': '{"F": 8.0, "device": "cpu", "dtype": "float64", "n": 8}', 'integrator': 'rk4'}
        """
        params = {k: plain(v) for k, v in self.get_params(deep=False).items()}
        return {
            "system": type(self).__name__,
            "system_params": json.dumps(params, sort_keys=True),
            "integrator": self.integrator,
        }

    # --- simulation -------------------------------------------------------
    def simulate(
        self,
        n_trajectories: int = 1,
        t_span=None,
        dt: float | None = None,
        save_every: int = 1,
        burn_in: float = 0.0,
        x0=None,
        random_state=None,
        n_steps: int | None = None,
        progress: bool = False,
    ) -> xr.Dataset:
        """Integrate the system and return a labelled trajectory Dataset.

        Parameters
        ----------
        n_trajectories : int, default=1
            Independent runs, integrated together in one batched call. With 1
            (and ``x0`` a single state) the ``trajectory`` dim is dropped.
        t_span : float or (float, float), optional
            Length of the saved run in model time (after ``burn_in``), or
            ``(t0, t1)``. Give either ``t_span`` or ``n_steps``. A length that
            is not a whole number of saving intervals ``dt * save_every`` is
            rounded to one, with a ``UserWarning``.
        dt : float, optional
            Integration step; the system's ``default_dt`` if omitted.
        save_every : int, default=1
            Save one state every ``save_every`` steps.
        burn_in : float, default=0
            Model time integrated and discarded first (onto the attractor):
            ``round(burn_in / dt)`` steps. Where that changes it (beyond
            round-off) a ``UserWarning`` names both times, and ``attrs["burn_in"]``
            records the time integrated.
        x0 : array-like, optional
            Initial state(s), ``(n_state,)`` or ``(n_trajectories, n_state)``;
            drawn by :meth:`random_initial_state` if omitted.
        random_state : int, RandomState or None
            Seed for the initial states.
        n_steps : int, optional
            Number of steps to save over (alternative to ``t_span``); rounded
            down to a multiple of ``save_every``, with a ``UserWarning``.
        progress : bool, default=False
            Show a tqdm progress bar.

        Returns
        -------
        xarray.Dataset
            Dims ``(trajectory,) time, <spatial>``; ``time`` is model time.

        Raises
        ------
        TypeError, ValueError
            A parameter of the call or of the system is of the wrong type or
            out of range (``n_trajectories`` and ``save_every`` >= 1,
            ``n_steps`` >= 0, ``dt`` > 0, ``burn_in`` >= 0); the message names it.
        xdyn.exceptions.DivergenceError
            The run became non-finite (during the burn-in too: its ``time`` is
            then before the saved run's start); reduce ``dt``.

        Examples
        --------
        >>> from xdyn.systems import Lorenz63
        >>> ds = Lorenz63().simulate(n_trajectories=2, t_span=1.0, dt=0.01, save_every=10,
        ...                          random_state=0)
        >>> dict(ds.sizes)
        {'trajectory': 2, 'time': 11}
        >>> Lorenz63().simulate(n_steps=10, burn_in=-5)
        Traceback (most recent call last):
        ...
        ValueError: burn_in must be a finite number >= 0, got -5.0
        """
        self.validate_params()
        dt = _check_real(self.default_dt if dt is None else dt, "dt", "positive")
        save_every = _check_int(save_every, "save_every", 1)
        n_trajectories = _check_int(n_trajectories, "n_trajectories", 1)
        burn_in = _check_real(burn_in, "burn_in", "nonnegative")
        t0, n_steps = saved_steps(t_span, n_steps, dt, save_every)
        n_burn, burn_in = burn_in_steps(burn_in, dt)
        x0, squeeze = initial_states(self, x0, n_trajectories, random_state)
        with torch.no_grad(), threads_for(x0.size):
            x = self.as_tensor(x0)
            x = self.forecast(x, dt, n_burn)
            if n_burn and not torch.isfinite(x).all():
                self._burn_in_divergence(self.as_tensor(x0), dt, n_burn, t0)
            traj = self.integrate(x, dt, n_steps, save_every, progress=progress)
        if not torch.isfinite(traj).all():
            from xdyn.exceptions import DivergenceError

            bad = int(torch.nonzero(~torch.isfinite(traj).reshape(traj.shape[0], -1).all(-1))[0])
            raise DivergenceError(
                f"{self.name} simulation became non-finite; reduce dt", time=t0 + bad * dt * save_every
            )
        traj = traj.transpose(0, 1)  # (trajectory, time, n)
        time = t0 + dt * save_every * np.arange(traj.shape[1])
        coords = {"time": ("time", time, {"units": self.time_units, "long_name": "model time"})}
        dims = ("trajectory", "time")
        if squeeze:
            traj = traj[0]
            dims = ("time",)
        else:
            coords["trajectory"] = np.arange(traj.shape[0])
        attrs = {
            "dt": dt,
            "save_every": save_every,
            "burn_in": float(burn_in),
            "random_state": seed_record(random_state),
        }
        return self.from_state(traj, dims=dims, coords=coords, attrs=attrs)

    def _burn_in_divergence(self, x, dt: float, n_burn: int, t0: float):
        """Raise the DivergenceError of a burn-in that became non-finite, at the first
        non-finite step: found again from the initial state ``x``, in chunks."""
        from xdyn.exceptions import DivergenceError

        done, chunk = 0, max(1, n_burn // 64)
        while done < n_burn:
            n = min(chunk, n_burn - done)
            y = self.forecast(x, dt, n)
            if not torch.isfinite(y).all():
                if n == 1:
                    break
                chunk = max(1, n // 8)  # narrow down within this chunk
                continue
            x, done = y, done + n
        step = min(done + 1, n_burn)  # the first step whose state is non-finite
        raise DivergenceError(
            f"{self.name} simulation became non-finite during the burn-in, at step {step} "
            f"of {n_burn} ({step * dt:g} model time units after its start; the saved run "
            f"starts at time {t0:g}); reduce dt", time=float(f"{t0 + (step - n_burn) * dt:.12g}"))

    def __repr__(self, N_CHAR_MAX=700):  # noqa: N803 - sklearn signature
        return super().__repr__(N_CHAR_MAX)


def _batched_jacobian(f, x: torch.Tensor) -> torch.Tensor:
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    jac = torch.func.vmap(torch.func.jacrev(f))(flat)
    return jac.reshape(*lead, x.shape[-1], x.shape[-1])


def _coord_dims(name, c) -> set:
    if isinstance(c, xr.DataArray):
        return set(c.dims)
    if isinstance(c, tuple):
        d = c[0]
        return {d} if isinstance(d, str) else set(d)
    return {name}
