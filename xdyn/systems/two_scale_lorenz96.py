"""Lorenz (1996) two-scale model: slow sites ``X_k`` coupled to fast sub-sites ``Y_{j,k}``.

Lorenz, E. N. (1996). Predictability: a problem partly solved. ECMWF Seminar on
Predictability, vol. 1, 1-18.

The fast variables form one periodic ring of length ``J * K`` (``Y_{J,k}`` is
followed by ``Y_{1,k+1}``), the convention of Lorenz (1996), Wilks (2005),
Arnold et al. (2013) and DAPPER's ``LorenzUV``. The flat state is
``[X_0 .. X_{K-1}, Y_{0,0} .. Y_{J-1,0}, Y_{0,1} ..]``, the same layout as
DAPPER's ``LorenzUV`` (``U`` then ``V``).
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems.base import DynamicalSystem, StateVariable

__all__ = ["TwoScaleLorenz96"]


class TwoScaleLorenz96(DynamicalSystem):
    r"""Two-scale Lorenz-96 model on ``K`` slow sites with ``J`` fast sub-sites each.

    .. math::

        \dot X_k &= X_{k-1}(X_{k+1} - X_{k-2}) - X_k + F
                    - \frac{h c}{b} \sum_{j} Y_{j,k} \\
        \dot Y_{j,k} &= -c b\, Y_{j+1,k}(Y_{j+2,k} - Y_{j-1,k}) - c\, Y_{j,k}
                        + \frac{h c}{b} X_k

    Both rings are periodic; the fast ring has length ``J * K``.

    Parameters
    ----------
    K : int, default=36
        Number of slow sites (dim ``k``).
    J : int, default=10
        Number of fast sub-sites per slow site (dim ``j``).
    F : float, default=10
        Forcing of the slow variables.
    h : float, default=1
        Coupling strength (``h = 0`` decouples the scales).
    b : float, default=10
        Amplitude ratio of slow to fast variables.
    c : float, default=10
        Time-scale ratio of fast to slow variables.
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    See Also
    --------
    xdyn.systems.Lorenz96 : the single-scale model (``h = 0`` slow dynamics).

    References
    ----------
    Lorenz (1996); Wilks, D. S. (2005), QJRMS 131, 389-407; Arnold, H. M.,
    Moroz, I. M. & Palmer, T. N. (2013), Phil. Trans. R. Soc. A 371, 20110479.

    Examples
    --------
    >>> model = TwoScaleLorenz96(K=8, J=4)
    >>> ds = model.simulate(n_steps=20, random_state=0)
    >>> ds.y.dims
    ('time', 'k', 'j')
    >>> model.n_state
    40
    >>> TwoScaleLorenz96.preset("arnold2013").get_params()["J"]
    32
    """

    name = "two_scale_lorenz96"
    default_dt = 0.005
    presets = {
        # Lorenz (1996), section 5; also DAPPER's LorenzUV/lorenz96.py (dt = 0.005).
        "lorenz1996": {"K": 36, "J": 10, "F": 10.0, "h": 1.0, "b": 10.0, "c": 10.0, "_dt": 0.005},
        # Wilks (2005) with F = 20 (he also uses 18); DAPPER's LorenzUV defaults.
        "wilks2005": {"K": 8, "J": 32, "F": 20.0, "h": 1.0, "b": 10.0, "c": 10.0, "_dt": 0.005},
        # Arnold, Moroz & Palmer (2013): K=8, J=32, h=1, b=10, F=20 and c=10
        # (their harder case c=4: ``preset("arnold2013", c=4.0)``).
        "arnold2013": {"K": 8, "J": 32, "F": 20.0, "h": 1.0, "b": 10.0, "c": 10.0},
    }

    _parameter_constraints = {
        "K": "int>=4", "J": "int>=1", "F": "real", "h": "real", "b": "real>0", "c": "real>0",
    }

    def __init__(self, K=36, J=10, F=10.0, h=1.0, b=10.0, c=10.0, dtype="float64", device="cpu"):
        self.K = K
        self.J = J
        self.F = F
        self.h = h
        self.b = b
        self.c = c
        self.dtype = dtype
        self.device = device

    def _variables(self):
        K, J = int(self.K), int(self.J)
        return [
            StateVariable(
                "x", ("k",), (K,),
                {"units": "1", "long_name": "Lorenz-96 slow (large-scale) variable"},
            ),
            StateVariable(
                "y", ("k", "j"), (K, J),
                {"units": "1", "long_name": "Lorenz-96 fast (small-scale) variable"},
            ),
        ]

    def coords(self):
        return {
            "k": ("k", np.arange(int(self.K)), {"long_name": "slow site index"}),
            "j": ("j", np.arange(int(self.J)), {"long_name": "fast sub-site index"}),
        }

    def rhs(self, t, x):
        K, J = int(self.K), int(self.J)
        X, Y = x[..., :K], x[..., K:]
        coupling = self.h * self.c / self.b
        # Rolls over the whole fast ring of length J*K, so Y_{J,k} neighbours Y_{1,k+1}.
        dX = (
            (torch.roll(X, -1, -1) - torch.roll(X, 2, -1)) * torch.roll(X, 1, -1)
            - X
            + self.F
            - coupling * Y.reshape(Y.shape[:-1] + (K, J)).sum(-1)
        )
        dY = (
            -self.c * self.b * torch.roll(Y, -1, -1) * (torch.roll(Y, -2, -1) - torch.roll(Y, 1, -1))
            - self.c * Y
            + coupling * torch.repeat_interleave(X, J, dim=-1)
        )
        return torch.cat((dX, dY), dim=-1)

    def random_initial_state(self, n, random_state=None):
        rng = np.random.RandomState(random_state) if not hasattr(random_state, "normal") else random_state
        K, J = int(self.K), int(self.J)
        # Slow sites near the forcing as in Lorenz96; fast sub-sites at the small
        # amplitude (~1/b of the slow ones) they keep on the attractor.
        X = self.F * np.ones((n, K)) + rng.normal(size=(n, K))
        Y = rng.normal(scale=1.0 / float(self.b), size=(n, K * J))
        return np.concatenate((X, Y), axis=-1)
