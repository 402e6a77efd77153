"""ETDRK4 for the stiff pseudo-spectral systems, and the cache of their operators.

One implementation shared by :class:`~xdyn.systems.KuramotoSivashinsky`,
:class:`~xdyn.systems.KolmogorovFlow` and
:class:`~xdyn.systems.ReactionDiffusion`: a system writes ``v' = L v + N(v)``
in spectral space with a diagonal linear symbol ``L``, gets the coefficients
once per ``dt`` from :func:`etdrk4_coefficients` (cached on the system with
:func:`cached`) and steps with :func:`etdrk4_step`.

Cox, S. M. & Matthews, P. C. (2002). Exponential time differencing for stiff
systems. J. Comput. Phys., 176(2), 430-455.
Kassam, A.-K. & Trefethen, L. N. (2005). Fourth-order time-stepping for stiff
PDEs. SIAM J. Sci. Comput., 26(4), 1214-1233.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["etdrk4_coefficients", "etdrk4_step", "cached", "to_torch", "complex_dtype"]

# Points on the upper half of the contour that evaluates the phi-functions: for a
# real symbol the lower half only adds the complex conjugates, so the real part
# of the half-circle mean is the full-circle mean. Kassam & Trefethen's kursiv.m
# uses 16; twice that, as both systems did before sharing this module.
N_CONTOUR = 32


def etdrk4_coefficients(linear, dt: float, n_contour: int = N_CONTOUR) -> dict:
    """ETDRK4 coefficients ``E, E2, Q, f1, f2, f3`` (numpy) for a real diagonal symbol.

    The phi-functions are averaged over ``n_contour`` points of the upper half
    of a unit circle centred at each ``dt * L`` (Kassam & Trefethen 2005), which
    avoids the cancellation error of the closed forms near ``dt * L = 0``.

    Parameters
    ----------
    linear : array_like of float
        The linear symbol ``L`` at each wavenumber (any shape).
    dt : float
        Time step.
    n_contour : int, default=32
        Points on the half contour.

    Returns
    -------
    dict of str to ndarray
        Arrays of the shape of ``linear``.

    Examples
    --------
    >>> import numpy as np
    >>> c = etdrk4_coefficients(np.array([0.0, -1.0]), dt=0.5)
    >>> sorted(c)
    ['E', 'E2', 'Q', 'f1', 'f2', 'f3']
    >>> # at L = 0 ETDRK4 is classical RK4: Q = dt/2 and f1 = f2 = f3 = dt/6
    >>> # (etdrk4_step weighs f2 twice: RK4's 1, 2, 2, 1)
    >>> [round(float(c[k][0]), 12) for k in ("Q", "f1", "f2", "f3")]
    [0.25, 0.083333333333, 0.083333333333, 0.083333333333]
    """
    z = dt * np.asarray(linear, dtype=float)
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    lr = z[..., None] + r
    e_lr = np.exp(lr)
    return {
        "E": np.exp(z),
        "E2": np.exp(z / 2),
        "Q": dt * np.mean((np.exp(lr / 2) - 1) / lr, axis=-1).real,
        "f1": dt * np.mean((-4 - lr + e_lr * (4 - 3 * lr + lr**2)) / lr**3, axis=-1).real,
        "f2": dt * np.mean((2 + lr + e_lr * (lr - 2)) / lr**3, axis=-1).real,
        "f3": dt * np.mean((-4 - 3 * lr - lr**2 + e_lr * (4 - lr)) / lr**3, axis=-1).real,
    }


def etdrk4_step(v, nonlinear, coeffs):
    """One Cox-Matthews ETDRK4 step of ``v' = L v + N(v)`` in spectral space.

    Parameters
    ----------
    v : torch.Tensor
        Spectral state (complex), batched over leading dims.
    nonlinear : callable
        ``N(v)``, same shape as ``v``.
    coeffs : mapping
        ``E, E2, Q, f1, f2, f3`` as tensors broadcasting against ``v``
        (:func:`etdrk4_coefficients` then :func:`to_torch`).

    Examples
    --------
    >>> import numpy as np, torch
    >>> lam = np.array([-2.0])  # v' = -2 v + 1: exact step from v0 = 0 is (1 - e^{-2 dt}) / 2
    >>> c = to_torch(etdrk4_coefficients(lam, dt=0.1), torch.float64, "cpu")
    >>> v = etdrk4_step(torch.zeros(1, dtype=torch.complex128), lambda v: torch.ones_like(v), c)
    >>> bool(abs(v.real.item() - (1 - np.exp(-0.2)) / 2) < 1e-14)
    True
    """
    e, e2, q, f1, f2, f3 = (coeffs[k] for k in ("E", "E2", "Q", "f1", "f2", "f3"))
    nv = nonlinear(v)
    a = e2 * v + q * nv
    na = nonlinear(a)
    b = e2 * v + q * na
    nb = nonlinear(b)
    c = e2 * a + q * (2 * nb - nv)
    nc = nonlinear(c)
    return e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of the same precision as the real ``dtype``.

    Examples
    --------
    >>> import torch
    >>> complex_dtype(torch.float32)
    torch.complex64
    """
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def to_torch(arrays: dict, dtype: torch.dtype, device) -> dict:
    """Numpy arrays as tensors: real ones in ``dtype``, complex ones in its complex twin.

    Examples
    --------
    >>> import numpy as np, torch
    >>> out = to_torch({"k": np.arange(3.0), "ik": 1j * np.arange(3.0)}, torch.float32, "cpu")
    >>> out["k"].dtype, out["ik"].dtype
    (torch.float32, torch.complex64)
    """
    cplx = complex_dtype(dtype)
    return {
        k: torch.as_tensor(a, dtype=cplx if np.iscomplexobj(a) else dtype, device=device)
        for k, a in arrays.items()
    }


def _under_functorch() -> bool:
    # Tensors made inside torch.func transforms are wrapped for that call only.
    try:
        return torch._C._functorch.peek_interpreter_stack() is not None
    except AttributeError:  # pragma: no cover - older torch
        return False


def cached(system, slot: str, key: tuple, build):
    """``build()`` cached on ``system`` under ``slot`` while ``key`` is unchanged.

    ``key`` holds every parameter the value depends on (grid, ``dt``, dtype,
    device ...), so ``set_params`` never reuses a stale value; one value is kept
    per slot. The cache is an ordinary attribute, so the system still pickles.
    Nothing is cached inside a ``torch.func`` transform: tensors created there
    are wrapped for that transform only.

    Examples
    --------
    >>> class System:
    ...     pass
    >>> s = System()
    >>> a = cached(s, "ops", (1,), lambda: [1])
    >>> cached(s, "ops", (1,), lambda: [2]) is a, cached(s, "ops", (2,), lambda: [2])
    (True, [2])
    """
    cache = system.__dict__.setdefault("_xdyn_cache", {})
    if slot in cache and cache[slot][0] == key:
        return cache[slot][1]
    value = build()
    if not _under_functorch():
        cache[slot] = (key, value)
    return value
