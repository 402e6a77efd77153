"""LD-EnSF: the ensemble score filter in the latent space of a latent dynamics network.

Xiao, Si & Chen (ICLR 2026), "LD-EnSF: Synergizing latent dynamics with
ensemble score filters for fast data assimilation with sparse observations".
The state assimilated is the LDNet latent state augmented with the scaled
system parameters, ``z = [s, u]``; the forecast is the LDNet's explicit latent
step (parameters persist), so no full-space model runs; the observation in
latent space is the output of an :class:`ObservationEncoder` that reads the
whole history of sparse observations, with the spread of its training
residuals as the observation error; the analysis is the EnSF reverse-time SDE
(:func:`xdyn.assimilation._score.ensf_analysis`) with the identity as the
observation operator. Analyses are decoded back onto the original grid, and
the parameters come with their ensemble spread.

Why this is not a registered :class:`~xdyn.assimilation.BaseAssimilator`: that
contract cycles a physical ``system`` with an observation ``operator`` on the
system's flat state (the cycle context builds ``h``, ``R`` and the model steps
from them). LD-EnSF has neither: its model is a learned latent ODE, its
observation is an encoder output, and its ``predict`` returns parameters
besides the fields. It keeps the estimator contract (fit/predict, clone,
pickle, ``random_state``) as a plain estimator instead.
"""

from __future__ import annotations

import copy
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from xdyn.assimilation._score import (GUIDANCES, INTEGRATORS, SCORES, _check_sampler_options,
                                      ensf_analysis)
from xdyn.assimilation._cycle import LostTrackWarning
from xdyn.assimilation.observation_encoder import ObservationEncoder
from xdyn.exceptions import DivergenceError
from xdyn.metrics import state_rmse
from xdyn.model_selection import unwrap
from xdyn.utils import torch_generator
from xdyn.utils._prefit import PrefitCloneMixin

__all__ = ["LDEnSF"]

_REFINE_ITERATIONS = 3  # Gauss-Newton steps of refine_parameters (converged in 2 on the tsunami)
# central-difference step of the LDNet rollout's sensitivity to the parameters
# (refine_parameters), taken in float64: truncation ~1e-10, round-off ~1e-11, below float32
# rounding. Torch's forward mode (2.13, CPU) ran the rollout's small ops 17x slower than
# the plain pass (its elementwise ops went through Python decompositions)
_FD_STEP = 1e-5
# observations whose noise std differs from the encoder's training one by more than this
# factor (at any site) are out of its training regime: predict warns (the robustness
# experiments run there on purpose). Not exact: a noise level set from each set's own RMS
# differs a little between the training and the test trajectories
_NOISE_FACTOR = 1.5


def _noise_std_like(obs, y):
    """``obs["noise_std"]`` on the dims of the observations ``y``, matched by dim name.

    Examples
    --------
    >>> y = xr.DataArray(np.zeros((2, 3, 1)), dims=("trajectory", "time", "obs"))
    >>> obs = xr.Dataset({"observation": y, "noise_std": ("trajectory", [0.1, 1.0])})
    >>> _noise_std_like(obs, y)[:, :, 0].tolist()
    [[0.1, 0.1, 0.1], [1.0, 1.0, 1.0]]
    """
    ns = obs["noise_std"]
    extra = [d for d in ns.dims if d not in y.dims]
    if extra:
        raise ValueError(f"noise_std has dims {ns.dims}, and {extra} are not dims of the "
                         f"observations {y.dims}: give it on (some of) the observations' dims")
    return np.asarray(ns.broadcast_like(y).transpose(*y.dims).values, dtype=float)


def _site_noise(obs, sample_dim):
    """RMS of ``obs``'s noise std per site along ``obs`` (None without ``noise_std``)."""
    if "noise_std" not in obs:
        return None
    y = obs["observation"].transpose(sample_dim, "time", ...)
    return np.sqrt(np.nanmean(_noise_std_like(obs, y) ** 2, axis=(0, 1)))


def _obs_time(obs, k):
    """The ``k``-th observation time of ``obs`` (its index where it has no time coordinate)."""
    return obs["time"].values[k].item() if "time" in obs.coords else k


def _central_jacobian(fun, x):
    """Jacobian of a batched ``fun``: ``x`` (n, d) -> (n, m), and ``fun(x)``, by central
    differences in one call of ``fun`` on (n, 2 d + 1, d) points.

    Examples
    --------
    >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> def fun(p):  # (x0 x1, x0)
    ...     return torch.stack([p[..., 0] * p[..., 1], p[..., 0]], -1)
    >>> J, f = _central_jacobian(fun, x)
    >>> J.round(decimals=6).tolist(), f.tolist()
    ([[[2.0, 1.0], [1.0, 0.0]]], [[2.0, 1.0]])
    """
    d = x.shape[-1]
    step = _FD_STEP * torch.eye(d, dtype=x.dtype, device=x.device)
    pts = torch.cat([x.unsqueeze(-2), x.unsqueeze(-2) + step, x.unsqueeze(-2) - step], -2)
    out = fun(pts)                                                  # (n, 2 d + 1, m)
    J = (out[..., 1:d + 1, :] - out[..., d + 1:, :]) / (2 * _FD_STEP)
    return J.transpose(-1, -2), out[..., 0, :]


def _float64_copy(module):
    """A float64 copy of a fitted torch module (for :func:`_central_jacobian`)."""
    return copy.deepcopy(module).to(torch.float64)


class LDEnSF(PrefitCloneMixin, BaseEstimator):
    """Ensemble score filter on the latent state and parameters of an LDNet.

    Parameters
    ----------
    ldnet : xdyn.rom.LDNet
        The latent dynamics network (cloned and fitted in :meth:`fit`).
    encoder : ObservationEncoder, optional
        The observation encoder (cloned and fitted in :meth:`fit`); default
        ``ObservationEncoder(sample_dim=sample_dim)``. Its ``sample_dim``
        (and the ldnet's) must be ``sample_dim``.
    n_members : int, default=20
    n_pseudo_steps : int, default=100
        Reverse-SDE steps of each analysis.
    eps : float, default=0.05
    variance_floor : float in [0, 1), default=0.0
        ``sigma_0^2`` of the sampler's schedule in standardised latent units (see
        :class:`~xdyn.assimilation.EnSF`); 0 as in the original LD-EnSF code.
    prior_score : {"kernel", "mixture", "gaussian"}, default="kernel"
        Prior score of the forecast members; ``"kernel"`` (per member) is the
        original's (see :class:`~xdyn.assimilation.EnSF`'s ``prior_score``).
        (Named ``score`` before: that name is the estimator's :meth:`score`.)
    guidance : {"damped", "gaussian"}, default="damped"
        Likelihood term of the sampler: the original's damped one, or the
        diffused likelihood of a Gaussian forecast (see
        :class:`~xdyn.assimilation.EnSF`; it needs ``prior_score``
        ``"gaussian"`` or ``"mixture"``: with the per-member kernel the
        analysis barely moves).
    integrator : {"explicit", "semi-implicit"}, default="explicit"
        Pseudo-time step of the sampler (see :class:`~xdyn.assimilation.EnSF`).
        The explicit damped sampler needs a floor on the latent observation
        error (below); the semi-implicit one and the Gaussian guidance do not.
    obs_noise_scale : float, default=1.0
        Factor on the encoder's residual std (the latent observation error);
        read by :meth:`predict`, so that it can be changed after fit. That
        error is the encoder's at the training observations' noise:
        :meth:`predict` warns on observations whose ``noise_std`` differs from
        it by more than a factor 1.5 (an untrained regime).
    likelihood : {"encoder", "joint"}, default="encoder"
        What the analysis conditions on. ``"encoder"``: the encoder's output as
        an observation of ``z`` (the original). ``"joint"``: that, and the
        sparse observations themselves through the decoder at the observed
        points (``LDNet.decode_points``; the observations' ``noise_std`` as
        their error), so that the analysis is not limited by the encoder's
        accuracy once the decoder can explain the observations. The two terms
        see the same data (the encoder reads the observations too): the joint
        likelihood counts that information twice, a deliberate weighting
        towards the observations. Needs the observations' spatial coordinates
        and ``variable`` (when the LDNet has several fields) on the ``obs``
        dim, and ``integrator="semi-implicit"`` (accurate point observations
        make the explicit damped sampler stiff). Not in the original; on the
        quick tsunami its field error is 0.064 against the encoder's 0.172
        (the LDNet's own 0.046), at 88 ms instead of 1 ms per analysis.
    joint_iterations : int, default=5
        Linearisations of the decoder per analysis with ``likelihood="joint"``:
        at the forecast mean, then at each analysis mean (Gauss-Newton). The
        sampler with the decoder itself inside (not linearised) was worse on
        the tsunami (0.188) and 40x slower; 1, 2, 3, 5 linearisations gave
        0.100, 0.080, 0.069, 0.064 (the first times, far from the truth, need
        them).
    refine_parameters : bool, default=False
        After each analysis, redraw the parameter members from the Laplace
        approximation of their posterior given every observation so far,
        through the LDNet rollout from the zero latent state and the decoder
        at the observed points, under the parameters' uniform prior (by its
        moments; Gauss-Newton from the analysis members' mean). Not in the
        original; needs the observations' coordinates as ``likelihood="joint"``
        does. On the quick tsunami the bump location's error at the last time
        falls from 4.8% (the encoder's) to 0.25%, the optimum of a grid search
        through the same LDNet. Each analysis rolls the LDNet out over the
        whole history: the cost grows with the number of analyses so far.
    initial_spread : float, default=0.05
        Std (in standardised latent units) of the initial latent members
        around the zero latent start; parameters start from their uniform
        prior over the training range.
    spread_scale : float or dict, default=1.0
        Factor on the reported spreads: every ``*_spread`` output and each
        member's deviation from the mean in ``return_members`` (the means and
        the filter itself are unchanged). A dict maps ``"fields"``,
        ``"latent"`` and parameter names to their own factors (missing: 1).
        Set it from held-out trajectories to calibrate the reported
        uncertainty (the analyses' own spread is too small: see Notes;
        :func:`xdyn.experiments.ldensf.calibrated_spread_scale`).
    prefit_ldnet : bool, default=False
        Use ``ldnet`` as it is (already fitted, e.g. on trajectories without
        the noise copies the encoder needs) instead of fitting a clone; clones
        of the filter keep that same LDNet (as scikit-learn's ``FrozenEstimator``;
        :meth:`fit` copies it), so that the filter can be tuned and cross-validated.
    sample_dim : str, default="trajectory"
    raise_on_divergence : bool, default=True
        Raise :class:`~xdyn.DivergenceError` when an analysis becomes
        non-finite; if False, warn (:class:`~xdyn.assimilation.LostTrackWarning`)
        and return the analysis as NaN from that time on, every trajectory of
        the call (its ``diverged`` and ``diverged_time`` attrs say when).
    random_state : int, RandomState instance or None, default=None
        Seeds each ``predict``'s initial members and score-filter noise (the
        networks' training follows their own ``random_state``): an int repeats
        them, None or an instance draws new ones at every call.

    Attributes
    ----------
    ldnet_ : xdyn.rom.LDNet
    encoder_ : ObservationEncoder
    latent_mean_, latent_std_ : ndarray of shape (n_latent + n_params,)
        Standardisation of ``z = [s, u]`` (from the training latents).
    latent_noise_std_ : ndarray of shape (n_latent + n_params,)
        Latent observation error in standardised units, before the factor
        ``obs_noise_scale`` (applied by :meth:`predict`). With the explicit
        integrator and the damped guidance the analysis uses at least ``1.5 /
        sqrt(n_pseudo_steps)``: below that that sampler is unstable.
    timing_ : dict
        Seconds per assimilation step of the last :meth:`predict`, split into
        ``dynamics`` (latent forecast) and ``analysis``.
    truth_attrs_ : dict
        Attributes of the training truth's spatial coordinates and parameters,
        given back to them in the output of :meth:`predict` (the fields keep
        ``ldnet_.field_attrs_``).
    noise_std_ : ndarray of shape (n_obs,) or None
        RMS of the training observations' ``noise_std`` per site (the
        encoder's order); None where they had none.

    Notes
    -----
    The ``*_spread`` outputs are the analysis ensemble's spread, and they are
    too small for an error bar: they leave out the LDNet's own error (the
    decoded fields' floor) and the analyses treat the encoder's errors as
    independent from one time to the next, while an encoder that reads the
    history makes them correlated (their integrated autocorrelation time is
    2-5 observation steps on the quick Kolmogorov case), so repeated
    analyses shrink the ensemble below its error. Measured on the quick
    experiments (``spread_skill`` in their results, the spread-skill ratio),
    the fields' ratio is 0.01-0.27 and the latent state's 0.09-0.25, where a
    calibrated ensemble scores 1; see the benchmarks page. ``spread_scale``,
    set on held-out trajectories, rescales what is reported.

    Examples
    --------
    >>> from xdyn.datasets.ldensf_data import kolmogorov_ldensf
    >>> from xdyn.observe import observe
    >>> from xdyn.rom import LDNet
    >>> truth = kolmogorov_ldensf(n_trajectories=4, N=16, n_saved=4, burn_in_steps=2)
    >>> obs = observe(truth, "identity", noise_std=0.1, random_state=0)
    >>> small = dict(max_epochs=2, random_state=0, device="cpu")
    >>> f = LDEnSF(LDNet(n_latent=3, n_points=8, **small),
    ...            ObservationEncoder(hidden_size=8, **small), n_members=5,
    ...            n_pseudo_steps=10, random_state=0).fit(obs, truth)
    >>> out = f.predict(obs)
    >>> dict(out["vorticity"].sizes), dict(out["Re"].sizes)
    ({'trajectory': 4, 'time': 4, 'y': 16, 'x': 16}, {'trajectory': 4, 'time': 4})

    Conditioning on the observations through the decoder as well (the same
    fitted networks):

    >>> joint = f.set_params(likelihood="joint", integrator="semi-implicit").predict(obs)
    >>> dict(joint["vorticity"].sizes) == dict(out["vorticity"].sizes)
    True
    """

    # A sequential filter (not a BaseAssimilator): a fold along time is scored after a run
    # over the record from its start (xdyn.model_selection.warm_start_score), by
    # _per_time_error (the fields only, as score)
    _sequential_filter = True

    _parameter_constraints = {
        "ldnet": [object],
        "encoder": [ObservationEncoder, None],
        "n_members": [Interval(Integral, 2, None, closed="left")],
        "n_pseudo_steps": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="neither")],
        "variance_floor": [Interval(Real, 0, 1, closed="left")],
        "prior_score": [StrOptions(set(SCORES))],
        "guidance": [StrOptions(set(GUIDANCES))],
        "integrator": [StrOptions(set(INTEGRATORS))],
        "obs_noise_scale": [Interval(Real, 0, None, closed="neither")],
        "likelihood": [StrOptions({"encoder", "joint"})],
        "joint_iterations": [Interval(Integral, 1, None, closed="left")],
        "refine_parameters": ["boolean"],
        "initial_spread": [Interval(Real, 0, None, closed="left")],
        "spread_scale": [Interval(Real, 0, None, closed="neither"), dict],
        "prefit_ldnet": ["boolean"],
        "sample_dim": [str],
        "raise_on_divergence": ["boolean"],
        "random_state": ["random_state"],
    }

    _prefit_models = {"prefit_ldnet": ("ldnet",)}  # clones keep a prefit LDNet

    def __init__(self, ldnet=None, encoder=None, *, n_members=20, n_pseudo_steps=100, eps=0.05,
                 variance_floor=0.0, prior_score="kernel", guidance="damped",
                 integrator="explicit",
                 obs_noise_scale=1.0,
                 likelihood="encoder", joint_iterations=5, refine_parameters=False,
                 initial_spread=0.05, spread_scale=1.0,
                 prefit_ldnet=False, sample_dim="trajectory", raise_on_divergence=True,
                 random_state=None):
        self.ldnet = ldnet
        self.encoder = encoder
        self.n_members = n_members
        self.n_pseudo_steps = n_pseudo_steps
        self.eps = eps
        self.variance_floor = variance_floor
        self.prior_score = prior_score
        self.guidance = guidance
        self.integrator = integrator
        self.obs_noise_scale = obs_noise_scale
        self.likelihood = likelihood
        self.joint_iterations = joint_iterations
        self.refine_parameters = refine_parameters
        self.initial_spread = initial_spread
        self.spread_scale = spread_scale
        self.prefit_ldnet = prefit_ldnet
        self.sample_dim = sample_dim
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state

    # ------------------------------------------------------------------- fit
    def __setstate__(self, state):
        # pickled before the prior score was named prior_score (its old name, score, hid
        # the score method), or before noise_std_ / truth_attrs_ were recorded
        if isinstance(state.get("score"), str):
            state["prior_score"] = state.pop("score")
        if "encoder_" in state:  # fitted before the training noise and attrs were recorded
            state.setdefault("noise_std_", None)
            state.setdefault("truth_attrs_", {})
        self.__dict__.update(state)

    def fit(self, obs, truth):
        """Train the LDNet on ``truth`` and the encoder on ``obs`` -> its latents.

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            Observations of the training trajectories (``observation`` with
            dims (trajectory, time, obs)), at times of ``truth``.
        truth : xarray.Dataset or SampleView
            The training trajectories with their parameters (see
            :meth:`xdyn.rom.LDNet.fit`).
        """
        self._validate_params()
        _check_sampler_options(self.integrator, self.guidance, self.prior_score)
        self._check_likelihood()
        if self.ldnet is None or not hasattr(self.ldnet, "transform"):
            raise TypeError(f"ldnet must be an xdyn.rom.LDNet, got {self.ldnet!r}")
        encoder = (ObservationEncoder(sample_dim=self.sample_dim) if self.encoder is None
                   else self.encoder)
        for name, est in (("ldnet", self.ldnet), ("encoder", encoder)):
            other = getattr(est, "sample_dim", self.sample_dim)
            if other != self.sample_dim:
                raise ValueError(f"{name}.sample_dim is {other!r} and LDEnSF's sample_dim "
                                 f"{self.sample_dim!r}: set them to the same dim")
        obs, truth = unwrap(obs), unwrap(truth)
        self._check_times(obs, truth)
        if self.prefit_ldnet:
            if not hasattr(self.ldnet, "net_"):
                raise NotFittedError("prefit_ldnet=True needs a fitted ldnet")
            self.ldnet_ = copy.deepcopy(self.ldnet)
        else:
            self.ldnet_ = clone(self.ldnet).fit(truth)
        latent = self.ldnet_.transform(truth)
        target = xr.merge([latent.drop_vars("latent"),
                           truth[self.ldnet_.parameters_]], compat="override")
        self.encoder_ = clone(encoder).fit(obs, target)
        self.noise_std_ = _site_noise(obs, self.sample_dim)
        self.truth_attrs_ = {name: dict(truth[name].attrs)
                             for name in (*self.ldnet_.spatial_dims_, *self.ldnet_.parameters_)
                             if name in truth.variables}
        # z = [s, u]: its training values at the observation times standardise the EnSF
        z = self._z_from_encoder_layout(
            np.asarray(latent["latent_state"].sel(time=obs["time"].values).values),
            np.stack([truth[p].values for p in self.ldnet_.parameters_], -1))
        self.latent_mean_ = z.reshape(-1, z.shape[-1]).mean(0)
        self.latent_std_ = z.reshape(-1, z.shape[-1]).std(0) + 1e-6
        resid = self.encoder_.residual_std_.copy()
        n_lat = int(self.ldnet_.n_latent)
        span = np.where(self.ldnet_.param_high_ > self.ldnet_.param_low_,
                        self.ldnet_.param_high_ - self.ldnet_.param_low_, 1.0)
        resid[n_lat:] = resid[n_lat:] * 2 / span
        # unscaled: obs_noise_scale is applied by predict, so that set_params after fit counts
        self.latent_noise_std_ = resid / self.latent_std_
        return self

    def _check_likelihood(self):
        if self.likelihood == "joint" and self.integrator != "semi-implicit":
            raise ValueError("likelihood='joint' needs integrator='semi-implicit': the point "
                             "observations through the decoder make the explicit sampler stiff")

    def _check_times(self, obs, truth):
        for name, ds in (("obs", obs), ("truth", truth)):
            if not isinstance(ds, xr.Dataset):
                raise TypeError(f"{name} must be an xarray.Dataset, got {type(ds).__name__}")
            if "time" not in ds.dims or self.sample_dim not in ds.dims:
                raise ValueError(f"{name} needs dims ({self.sample_dim!r}, 'time'); "
                                 f"has {tuple(ds.dims)}")
        if "time" not in obs.coords and "time" in truth.coords:
            # a bare dim would pair the observations with truth's first times
            raise ValueError("obs needs a 'time' coordinate (the observations' model times), "
                             "as truth has one")
        missing = np.setdiff1d(obs["time"].values, truth["time"].values)
        if missing.size:
            raise ValueError(f"observation times {missing[:3].tolist()} are not times of truth")

    def _z_from_encoder_layout(self, latent, params):
        """``[s, u_scaled]`` from latents (n, T, L) and physical parameters (n, P)."""
        u = self.ldnet_._scale_params(params)
        u = np.repeat(u[:, None], latent.shape[1], 1)
        return np.concatenate([latent, u], -1)

    def _encoded_z(self, obs):
        """Encoder output as ``z`` (n, T, L+P): its parameter columns rescaled."""
        raw = self.encoder_.encode(obs)
        n_lat = int(self.ldnet_.n_latent)
        return np.concatenate([raw[..., :n_lat], self.ldnet_._scale_params(raw[..., n_lat:])], -1)

    # --------------------------------------------------------------- predict
    def predict(self, obs, return_members=False):
        """Assimilate ``obs`` (one independent cycle per trajectory).

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            Observations as in :meth:`fit` (the training sites, interval and
            start).
        return_members : bool, default=False
            Add each field's decoded members as ``<name>_members``.

        Returns
        -------
        xarray.Dataset
            At every observation time: the fields on the training grid (mean
            and ``<name>_spread`` over the decoded members, in the fields'
            units), ``latent_state`` and ``latent_spread``, and each parameter
            with ``<name>_spread``. ``attrs`` hold the wall time per step of
            the dynamics and of the analysis, and the RMS observation noise
            std of the training and of these observations.

        Raises
        ------
        xdyn.DivergenceError
            If an analysis becomes non-finite (with its observation time) and
            ``raise_on_divergence``.
        """
        check_is_fitted(self, "encoder_")
        self._validate_params()   # the settings predict reads may have been set after fit
        self._check_likelihood()
        obs = unwrap(obs)
        joint = self.likelihood == "joint"
        # before the encoder's own checks of the sites and times: these errors say more
        points = self._observed_points(obs) if joint or self.refine_parameters else None
        steps = self._observation_steps(obs)
        z_obs = (self._encoded_z(obs) - self.latent_mean_) / self.latent_std_
        noise_levels = self._check_noise(obs)
        module = self.ldnet_.module_
        # the refinement's rollout in float64, copied once per call, not per analysis
        module64 = _float64_copy(module) if self.refine_parameters else None
        p = next(module.parameters())
        dt_, dev = p.dtype, p.device
        mean = torch.as_tensor(self.latent_mean_, dtype=dt_, device=dev)
        std = torch.as_tensor(self.latent_std_, dtype=dt_, device=dev)
        # the explicit damped sampler is stable only for noise_std above ~1/sqrt(n_pseudo_steps)
        # (its likelihood term is stiff: see ensf_analysis); there a more accurate encoder is
        # trusted only that far
        stiff = self.integrator == "explicit" and self.guidance == "damped"
        floor = 1.5 / np.sqrt(int(self.n_pseudo_steps)) if stiff else 0.0
        noise = torch.as_tensor(np.maximum(float(self.obs_noise_scale) * self.latent_noise_std_,
                                           floor), dtype=dt_, device=dev)
        n_traj, n_lat, M = z_obs.shape[0], int(self.ldnet_.n_latent), int(self.n_members)
        gen = torch_generator(self.random_state)
        # initial members: the shared zero start, parameters from their uniform prior
        s = float(self.initial_spread) * std[:n_lat] * torch.randn(
            n_traj, M, n_lat, generator=gen, dtype=dt_).to(dev)
        u = (2 * torch.rand(n_traj, M, self.ldnet_.n_params_, generator=gen, dtype=dt_) - 1).to(dev)
        z = torch.cat([s, u], -1)
        sampler = dict(n_pseudo_steps=int(self.n_pseudo_steps), eps=float(self.eps),
                       variance_floor=float(self.variance_floor), score=self.prior_score,
                       guidance=self.guidance, integrator=self.integrator, generator=gen)
        # the zero latent state sits one saved step before the first training state
        step, t_dyn, t_ana, members, diverged = -1, 0.0, 0.0, [], None
        with torch.no_grad():
            for k, target in enumerate(steps):
                tic = time.perf_counter()
                if target > step:
                    s_new = module.step(z[..., :n_lat], z[..., n_lat:], int(target - step))
                    z = torch.cat([s_new, z[..., n_lat:]], -1)
                step = target
                t_dyn += time.perf_counter() - tic
                tic = time.perf_counter()
                y = torch.as_tensor(z_obs[:, k], dtype=dt_, device=dev)
                if not joint:
                    za = ensf_analysis((z - mean) / std, y, None, noise, **sampler)
                else:
                    za = self._joint_analysis(points, k, (z - mean) / std, y, noise, mean, std,
                                              sampler)
                z = za * std + mean
                # keep parameters inside the range the LDNet was trained on
                z = torch.cat([z[..., :n_lat], z[..., n_lat:].clamp(-1.0, 1.0)], -1)
                if self.refine_parameters:
                    z = self._refine_parameters(z, points, steps[:k + 1], gen, module64)
                t_ana += time.perf_counter() - tic
                if not bool(torch.isfinite(z).all()):  # no cycle monitor runs this loop
                    diverged = self._diverged(_obs_time(obs, k))
                    members += [torch.full_like(z, float("nan"))] * (len(steps) - k)
                    break
                members.append(z)
        ran = len(steps) if diverged is None else k + 1  # no step after a divergence runs
        self.timing_ = {"dynamics": t_dyn / ran, "analysis": t_ana / ran}
        out = self._output(torch.stack(members, 1), obs, return_members)
        out.attrs.update(noise_levels)
        out.attrs.update(diverged=int(diverged is not None),
                         diverged_time=np.nan if diverged is None else diverged)
        return out

    def _diverged(self, when):
        """Raise :class:`~xdyn.DivergenceError`, or warn, for an analysis that became
        non-finite at ``when``; returns ``when``."""
        if self.raise_on_divergence:
            raise DivergenceError("LD-EnSF analysis became non-finite", time=when)
        warnings.warn(f"LD-EnSF analysis became non-finite at time {when}; the analysis is NaN "
                      "from then on (flagged by the 'diverged' attr)", LostTrackWarning,
                      stacklevel=3)
        return when

    def _check_noise(self, obs):
        """Warn where ``obs``'s noise std is not the training one (per site, beyond
        :data:`_NOISE_FACTOR`): the encoder learned the training noise, and its training
        residual is the latent observation error. Returns the RMS noise stds of both
        (NaN where unknown) for the output's attrs."""
        fitted, given = self.noise_std_, _site_noise(obs, self.sample_dim)
        # RMS values, named as observe() names them (docs/data_model.rst)
        levels = {"training_noise_std_rms": np.nan, "obs_noise_std_rms": np.nan}
        if fitted is not None:
            levels["training_noise_std_rms"] = float(np.sqrt(np.mean(fitted ** 2)))
        if given is not None:
            levels["obs_noise_std_rms"] = float(np.sqrt(np.mean(given ** 2)))
        if fitted is None or given is None:
            return levels
        order = self.encoder_._sites(obs)
        given = given if order is None else given[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(given == fitted, 1.0, given / fitted)
        if np.any(ratio > _NOISE_FACTOR) or np.any(ratio < 1 / _NOISE_FACTOR):
            warnings.warn(
                f"these observations' noise_std (RMS {levels['obs_noise_std_rms']:.4g}, "
                f"{np.min(ratio):.3g}x to {np.max(ratio):.3g}x the training one per site) is "
                f"not the training observations' (RMS {levels['training_noise_std_rms']:.4g}): the "
                "encoder learned that noise and its "
                "training error is the latent observation error, so this is an untrained "
                "regime (the analyses may be overconfident); refit at this noise, or widen "
                "the latent error with obs_noise_scale", UserWarning, stacklevel=3)
        return levels

    def score(self, obs, truth):
        """Minus the time-averaged RMSE of the analysis mean's fields against ``truth``.

        The RMSE over every field, trajectory and grid point at each
        observation time (:func:`xdyn.metrics.state_rmse`), averaged over the
        times, as the assimilators' ``score``; the parameters are not scored.

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            Observations, as for :meth:`predict`.
        truth : xarray.Dataset or SampleView
            The true fields (on the training grid) at the observation times.

        Returns
        -------
        float
        """
        check_is_fitted(self, "encoder_")
        per_time = self._per_time_error(self.predict(obs), unwrap(truth))
        return -float(per_time.mean("time", skipna=False))

    def _per_time_error(self, analysis, truth):
        """The RMSE of ``analysis``'s fields against ``truth`` at each time (DataArray).

        What :meth:`score` averages over time, and
        :func:`xdyn.model_selection.warm_start_score` over a fold: the
        parameters are not scored.
        """
        fields = list(self.ldnet_.variables_)
        missing = [v for v in fields if v not in truth.data_vars]
        if missing:
            raise ValueError(f"truth lacks the field(s) {missing} LD-EnSF is scored on")
        return state_rmse(analysis[fields], truth[fields])

    def _observation_steps(self, obs):
        """The LDNet's saved-step index of each observation time.

        On the LDNet's own clock (its training start and step), which the
        encoder's targets used: a clock of LD-EnSF's own (from its ``truth``,
        e.g. sampled at the observation times only, or starting later) would
        advance the latent state by the wrong number of steps, and a time off
        the grid would be rounded onto it.
        """
        if "time" not in obs.coords and getattr(self.ldnet_, "time0_", None) is not None:
            # a bare dim reads as 0, 1, 2, ...: one LDNet step per analysis, whatever the
            # interval the encoder was trained at (the assimilators refuse it too)
            raise ValueError("obs needs a 'time' coordinate (the observations' model times): "
                             "LD-EnSF advances the latent state on the LDNet's clock, which "
                             "has times")
        steps = self.ldnet_._time_steps(obs)
        if np.any(np.diff(steps) <= 0):
            raise ValueError("observation times must be increasing")
        return steps

    def _observed_points(self, obs):
        """Where, what and how noisy each sparse observation is (joint likelihood, refinement).

        Returns ``(coords, field, y, noise_std)``: the observations' spatial
        coordinates per spatial dim, the LDNet field index of each, and the
        values ``(n, T, p)`` (missing ones set to 0) with their error std
        (infinite where missing).
        """
        ld = self.ldnet_
        if "observation" not in obs or "noise_std" not in obs:
            raise ValueError("likelihood='joint' and refine_parameters need 'observation' and "
                             "'noise_std' in obs")
        y = obs["observation"].transpose(self.sample_dim, "time", ...)
        dim = y.dims[-1]
        lacking = [d for d in ld.spatial_dims_ if d not in obs.coords or obs[d].dims != (dim,)]
        if lacking:
            raise ValueError(f"likelihood='joint' and refine_parameters need the observations' "
                             f"coordinate(s) {lacking} along {dim!r} (where each observation is)")
        if "variable" in obs.coords:
            names = np.asarray(obs["variable"].values).astype(str)
            unknown = sorted(set(names) - set(ld.variables_))
            if unknown:
                raise ValueError(f"observed variable(s) {unknown} are not fields of the LDNet "
                                 f"{ld.variables_}")
            field = np.array([ld.variables_.index(v) for v in names])
        elif len(ld.variables_) == 1:
            field = np.zeros(y.sizes[dim], dtype=int)
        else:
            raise ValueError(f"the LDNet has fields {ld.variables_}: obs needs a 'variable' "
                             f"coordinate along {dim!r} saying which each observation sees")
        values = np.asarray(y.values, dtype=float)
        # matched by dim name: by position, a (trajectory, obs) noise_std was read as
        # (time, obs) when there were as many trajectories as times
        noise_std = _noise_std_like(obs, y)
        missing = ~np.isfinite(values)
        given = noise_std[~missing]
        if np.any(given <= 0) or not np.all(np.isfinite(given)):
            # each observation is weighted by 1 / noise_std (the assimilators' check)
            raise ValueError(f"noise_std must be positive and finite, got "
                             f"{np.unique(given)[:8]} (likelihood='joint' and "
                             "refine_parameters weigh each observation by 1 / noise_std)")
        coords = {d: np.asarray(obs[d].values, float) for d in ld.spatial_dims_}
        return (coords, field, np.where(missing, 0.0, values),
                np.where(missing, np.inf, noise_std))

    def _decoded_observations(self, latent, points):
        """The observed values decoded from latents ``(..., L)``: ``(..., p)``, each
        observation's field at its point (``points`` from :meth:`_observed_points`)."""
        coords, field = points[:2]
        f = self.ldnet_.decode_points(latent, coords)                    # (..., p, F)
        idx = torch.as_tensor(field, device=f.device).expand(f.shape[:-1])
        return f.gather(-1, idx.unsqueeze(-1))[..., 0]

    def _decoded_observations_jacobian(self, latent, points):
        """:meth:`_decoded_observations` ``(..., p)`` and its Jacobian in the latent
        ``(..., p, L)``."""
        coords, field = points[:2]
        f, jac = self.ldnet_.decode_points_jacobian(latent, coords)       # (..., p, F[, L])
        idx = torch.as_tensor(field, device=f.device).expand(f.shape[:-1]).unsqueeze(-1)
        return (f.gather(-1, idx)[..., 0],
                jac.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, jac.shape[-1]))[..., 0, :])

    def _joint_analysis(self, points, k, x0, y_latent, noise, mean, std, sampler):
        """The analysis of ``likelihood="joint"`` at time ``k`` from standardised members ``x0``.

        The observation function ``h(z) = [z, decoded fields of z at the
        observed points]`` is linearised at the forecast mean, the sampler run
        (in closed form for the kernel score), and the decoder relinearised at
        the analysis mean, ``joint_iterations`` times in all (Gauss-Newton, as
        in an iterated extended Kalman filter).
        """
        values, noise_std = points[2:]
        n_lat = int(self.ldnet_.n_latent)

        def decoded(s_std):                  # standardised latents (n, L) -> (n, p, L), (n, p)
            f, jac = self._decoded_observations_jacobian(s_std * std[:n_lat] + mean[:n_lat],
                                                         points)
            return jac * std[:n_lat], f

        as_t = dict(dtype=mean.dtype, device=mean.device)
        y = torch.cat([y_latent, torch.as_tensor(values[:, k], **as_t)], -1)
        r = torch.cat([noise.expand(y_latent.shape), torch.as_tensor(noise_std[:, k], **as_t)], -1)
        lin = x0.mean(-2)                                           # (n, d)
        for _ in range(int(self.joint_iterations)):
            # over the latent entries only (the parameters are not decoded)
            J, h0 = decoded(lin[..., :n_lat])
            J = torch.cat([J, J.new_zeros(J.shape[:-1] + (lin.shape[-1] - n_lat,))], -1)
            c = lin.unsqueeze(-2)

            def h(x, J=J, h0=h0, c=c):
                return torch.cat([x, h0.unsqueeze(-2) + (x - c) @ J.transpose(-1, -2)], -1)

            za = ensf_analysis(x0, y, h, r, linear=True, **sampler)
            lin = za.mean(-2)
        return za

    def _refine_parameters(self, z, points, steps, gen, module64=None):
        """Redraw the parameter members from their posterior given every observation so far.

        The Laplace approximation of ``p(u | y_0..y_k)``: the observations at
        ``steps`` through the LDNet rollout of ``u`` from the zero latent state
        and the decoder at the observed points, under the parameters' own prior
        (U(-1, 1) by its moments), from the analysis members' mean. Its mode by
        ``_REFINE_ITERATIONS`` Gauss-Newton steps (the Jacobian: the rollout's
        sensitivity to the few parameters by central differences in float64,
        chained with the decoder's), its covariance the inverse Gauss-Newton
        Hessian there. ``module64``: the LDNet module in float64
        (:func:`_float64_copy`; made here when None).
        """
        values, noise_std = points[2:]
        n_lat = int(self.ldnet_.n_latent)
        module = self.ldnet_.module_
        k, n_roll = len(steps), int(steps[-1]) + 1
        as_t = dict(dtype=z.dtype, device=z.device)
        y = torch.as_tensor(values[:, :k], **as_t)                       # (n, k, p)
        w = torch.as_tensor(1.0 / noise_std[:, :k], **as_t)              # 0 where missing
        rows = torch.as_tensor(np.asarray(steps), device=z.device)
        module64 = _float64_copy(module) if module64 is None else module64

        def rolled(u):                                        # (n, B, P) -> (n, B, k * L)
            return module64.rollout(u, n_roll).index_select(-2, rows).flatten(-2)

        def jacobian(u):                                      # (n, k * p, P), (n, k * p)
            # the rollout's sensitivities by central differences (its small ops ran 17x
            # slower in forward mode), chained with the decoder's Jacobian
            ds, s = _central_jacobian(rolled, u.double())
            s = s.to(z.dtype).unflatten(-1, (k, n_lat))
            ds = ds.to(z.dtype).unflatten(-2, (k, n_lat))                # (n, k, L, P)
            f, jac = self._decoded_observations_jacobian(s, points)     # (n, k, p[, L])
            r = ((y - f) * w).flatten(1)
            return -((jac @ ds) * w.unsqueeze(-1)).flatten(1, 2), r

        u_members = z[..., n_lat:]
        # the prior is the parameters' own, U(-1, 1) by its moments (mean 0, variance 1/3):
        # the analysis members already hold the observations so far, and a prior made from
        # them counts each observation again at every step. Their mean is the start. (With
        # hundreds of stations the likelihood dominates: on the quick tsunami and shallow
        # water the spread did not move, 2.6-5x below the error either way.)
        precision = 3.0 * torch.eye(u_members.shape[-1], **as_t)
        u = u_members.mean(-2)                                          # (n, P)
        for _ in range(_REFINE_ITERATIONS):
            J, r = jacobian(u)
            hess = J.transpose(-1, -2) @ J + precision                   # r = y - f: dr/du = -J_f
            grad = (J.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1) \
                + (precision @ u.unsqueeze(-1)).squeeze(-1)
            u = (u - torch.linalg.solve(hess, grad)).clamp(-1.0, 1.0).detach()
        chol = torch.linalg.cholesky(torch.linalg.inv(hess.detach()))
        xi = torch.randn(u_members.shape, generator=gen, dtype=z.dtype).to(z.device)
        drawn = (u.unsqueeze(-2) + xi @ chol.transpose(-1, -2)).clamp(-1.0, 1.0)
        return torch.cat([z[..., :n_lat], drawn], -1)

    def _spread_scales(self):
        """``spread_scale`` as a factor for ``"fields"``, ``"latent"`` and each parameter."""
        names = ["fields", "latent", *self.ldnet_.parameters_]
        if not isinstance(self.spread_scale, dict):
            if not float(self.spread_scale) > 0:
                raise ValueError(f"spread_scale must be positive; got {self.spread_scale!r}")
            return dict.fromkeys(names, float(self.spread_scale))
        unknown = sorted(set(self.spread_scale) - set(names))
        if unknown:
            raise ValueError(f"spread_scale has unknown key(s) {unknown}; the keys are {names}")
        bad = {k: v for k, v in self.spread_scale.items() if not float(v) > 0}
        if bad:
            raise ValueError(f"spread_scale factors must be positive; got {bad}")
        return {k: float(self.spread_scale.get(k, 1.0)) for k in names}

    def _output(self, z, obs, return_members):
        """Dataset from members ``z`` (n_traj, T, M, L+P)."""
        ld, sd = self.ldnet_, self.sample_dim
        n_lat = int(ld.n_latent)
        # one time at a time, reduced over members at once: all decoded members of a
        # full-size run (n x T x M x 150^2 x fields) would not fit in memory
        mean, spread, members = [], [], []
        with torch.no_grad():
            for k in range(z.shape[1]):
                f = ld.decode(z[:, k, :, :n_lat])                           # (n, M, G, F)
                mean.append(f.mean(1).cpu().numpy())
                spread.append(f.std(1).cpu().numpy())
                if return_members:
                    members.append(f.cpu().numpy())
        scale = self._spread_scales()
        mean, spread = np.stack(mean, 1), scale["fields"] * np.stack(spread, 1)  # (n, T, G, F)
        if return_members:
            members = np.stack(members, 1)                                  # (n, T, M, G, F)
            center = mean[:, :, None]
            members = center + scale["fields"] * (members - center)
        zn = z.cpu().numpy()
        grid_shape = tuple(len(ld.grid_[d]) for d in ld.spatial_dims_)
        lead = (sd, "time")
        coords = {d: obs[d] for d in lead if d in obs.coords}
        known = self.truth_attrs_
        coords.update({d: (d, ld.grid_[d], dict(known.get(d, {}))) for d in ld.spatial_dims_})
        coords["latent"] = np.arange(n_lat)
        out = xr.Dataset(coords=coords)

        def attrs(own, long_name, spread=False):
            # the variable's own attrs (units ...), a spread without its standard_name
            return {**{k: a for k, a in own.items() if not (spread and k == "standard_name")},
                    "long_name": long_name}

        for i, v in enumerate(ld.variables_):
            # decoded in the fields' own units (the standardisation is undone)
            own = ld.field_attrs_[v]
            out[v] = (lead + ld.spatial_dims_, mean[..., i].reshape(mean.shape[:2] + grid_shape),
                      attrs(own, f"LD-EnSF analysis mean of {v}"))
            out[f"{v}_spread"] = (lead + ld.spatial_dims_,
                                  spread[..., i].reshape(mean.shape[:2] + grid_shape),
                                  attrs(own, f"LD-EnSF ensemble spread of {v}", spread=True))
            if return_members:
                f = members[..., i]                                         # (n, T, M, G)
                out[f"{v}_members"] = (lead + ("member",) + ld.spatial_dims_,
                                       f.reshape(f.shape[:3] + grid_shape),
                                       attrs(own, f"LD-EnSF members of {v}"))
        out["latent_state"] = (lead + ("latent",), zn[..., :n_lat].mean(2),
                               {"long_name": "analysis mean of the latent state", "units": "1"})
        out["latent_spread"] = (lead + ("latent",),
                                scale["latent"] * zn[..., :n_lat].std(2, ddof=1),
                                {"long_name": "ensemble spread of the latent state", "units": "1"})
        phys = ld.unscale_params(zn[..., n_lat:])                       # (n, T, M, P)
        for j, name in enumerate(ld.parameters_):
            own = known.get(name, {})
            out[name] = (lead, phys[..., j].mean(2),
                         attrs(own, f"estimated {name} (ensemble mean)"))
            out[f"{name}_spread"] = (lead, scale[name] * phys[..., j].std(2, ddof=1),
                                     attrs(own, f"ensemble spread of {name}", spread=True))
        out.attrs.update({"method": "LD-EnSF", "n_members": int(self.n_members),
                          "dynamics_seconds_per_step": self.timing_["dynamics"],
                          "analysis_seconds_per_step": self.timing_["analysis"]})
        return out
