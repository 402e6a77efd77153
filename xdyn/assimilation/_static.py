"""Cycle hooks shared by the methods with a static background covariance (OI, 3D-Var)."""

from __future__ import annotations

import torch
import xarray as xr
from sklearn.utils.validation import check_is_fitted

from xdyn.assimilation._linalg import whitened_gain, whitened_update
from xdyn.assimilation._neural_var_data import aligned_truth, analysis_dataset
from xdyn.assimilation.base import BaseAssimilator

__all__ = ["StaticCovarianceCycle", "gauss_newton_analysis"]

# gains kept per run: a few observing patterns (a network, with outages) recur; observations
# missing at random would keep a (q, n) gain per time (gigabytes for a large state)
_MAX_GAINS = 16


def gauss_newton_analysis(x_b, B, k, ctx, n_outer=1):
    """3D-Var analysis at observation time ``k`` by Gauss-Newton outer loops.

    ``x_{j+1} = x_b + K_j (y - h(x_j) - H_j (x_b - x_j))`` with ``H_j`` the
    Jacobian of ``h`` at ``x_j`` (``x_0 = x_b``); a linear operator needs one
    loop (the closed form). Returns the analysis and the diagonal of
    ``(I - K H) B`` at the last linearisation (Courtier et al. 1994,
    incremental 3D/4D-Var). With a linear operator the gain depends only on
    ``B`` and on what is observed: it is computed once per observed pattern of
    a run (``ctx.scratch``, the first 16 patterns), not at every time.
    """
    W = ctx.whitening(k)
    y = ctx.innovation_data(k)
    if ctx.operator.linear and B.dim() == 2 and W.shape[0]:
        gains = ctx.scratch.setdefault("static gains", {})
        key = (id(B), ctx.mask[k].cpu().numpy().tobytes(), ctx.whitening_factor(k))
        found = gains.get(key)
        if found is None:
            Hw = W @ ctx.jacobian_h(x_b)
            Kt = whitened_gain(B, Hw)
            P_a = B - Kt.transpose(-1, -2) @ (Hw @ B)
            found = (Kt, torch.diagonal(P_a).clamp_min(0))
            if len(gains) < _MAX_GAINS:  # observations missing at random: one per time
                gains[key] = found
        Kt, var_a = found
        dw = ((y - ctx.h(x_b)).unsqueeze(-2) @ W.transpose(-1, -2)).squeeze(-2)
        return x_b + (dw.unsqueeze(-2) @ Kt).squeeze(-2), var_a
    x = x_b
    for _ in range(1 if ctx.operator.linear else int(n_outer)):
        H = ctx.jacobian_h(x)
        # innovation relative to the linearisation point x_j
        d = y - ctx.h(x) - ((x_b - x).unsqueeze(-2) @ H.transpose(-1, -2)).squeeze(-2)
        x, P_a = whitened_update(x_b, B, H, W, d)
    return x, torch.diagonal(P_a, dim1=-2, dim2=-1).clamp_min(0)


class StaticCovarianceCycle(BaseAssimilator):
    """Cycle hooks of the methods with a static background covariance (OI, 3D-Var).

    The state is ``(mean, std, B)``: the forecast carries the mean with the
    model and resets its std to that of ``B``; the analysis is the
    (Gauss-Newton) BLUE update with ``B``. Without ``initial_state`` the first
    background is the climatological mean of the system.
    """

    # the analysis std B implies: the same at every time whatever the errors (DAPPER's too)
    _spread_source = "static background covariance"

    def analyze(self, obs, background) -> xr.Dataset:
        """Single analyses of given backgrounds with the fitted ``B``, without cycling.

        Parameters
        ----------
        obs : xarray.Dataset
            Observations.
        background : xarray.Dataset
            A background state at every observation time (same batch dims).

        Returns
        -------
        xarray.Dataset
            The analysis at every observation time.

        Examples
        --------
        >>> from xdyn.assimilation import Var3D
        >>> from xdyn.observe import observe
        >>> from xdyn.systems import Lorenz63
        >>> truth = Lorenz63().simulate(n_steps=50, random_state=0)
        >>> obs = observe(truth, ["x", "y"], noise_std=0.5, random_state=1)
        >>> var = Var3D(B_scale=0.1).fit(obs, truth)
        >>> analysis = var.analyze(obs, truth + 1.0)
        >>> bool(abs(analysis["x"] - truth["x"]).mean() < 1.0)
        True
        """
        check_is_fitted(self, "B_")
        ctx = self._context(obs, fitted=True)
        x_b = aligned_truth(background, ctx, what="background")
        B = ctx.system.as_tensor(self.B_)
        with torch.no_grad():
            x_a = torch.stack([gauss_newton_analysis(x_b[k], B, k, ctx, int(self.n_outer))[0]
                               for k in range(x_b.shape[0])])
        return analysis_dataset(x_a, ctx, type(self).__name__)

    def _initialize(self, ctx, rng):
        B = ctx.system.as_tensor(self.B_)
        x = self._initial_mean(ctx, rng)
        if self.initial_state is None:  # climatological start: its spread is B's
            return x, torch.diagonal(B).sqrt().expand_as(x), B
        return x, torch.full_like(x, float(self.initial_spread)), B

    def _forecast(self, state, n_steps, ctx, rng):
        B = state[2]
        x = ctx.system.forecast(state[0], ctx.dt, n_steps)
        return x, torch.diagonal(B).sqrt().expand_as(x), B

    def _analyze(self, state, k, ctx, rng):
        x_b, _, B = state
        x, var_a = gauss_newton_analysis(x_b, B, k, ctx, int(self.n_outer))
        return x, var_a.sqrt().expand_as(x), B

    def _summarize(self, state):
        return state[0], None, state[1]
