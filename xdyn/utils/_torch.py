"""Torch device and dtype resolution shared by systems and learned estimators.

Every torch-using estimator takes ``device`` (``"auto"`` = CUDA when present,
else CPU) and ``dtype`` parameters, stored unchanged; these helpers turn them
into torch objects at the moment they are needed, with one error message for a
device that does not exist on this machine.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state

from xdyn.utils._validation import is_integer

__all__ = ["resolve_device", "resolve_dtype", "torch_generator"]


def resolve_device(device="auto") -> torch.device:
    """Turn a ``device`` parameter into a :class:`torch.device` present here.

    Parameters
    ----------
    device : str, torch.device or None, default="auto"
        ``"auto"`` (or None) gives ``cuda`` when :func:`torch.cuda.is_available`,
        else ``cpu``; anything else is passed to :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a torch device name, or names a CUDA (or MPS)
        device that this machine does not have. A model saved on a GPU loads on
        a CPU-only machine with ``device="auto"``.

    Examples
    --------
    >>> from xdyn.utils import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device='gpu' is not a torch device; ...
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        out = device
    else:
        try:
            out = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ValueError(
                f"device={device!r} is not a torch device; use 'auto' (CUDA when "
                "present, else CPU), 'cpu', 'cuda' or 'cuda:N'"
            ) from exc
    if out.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on "
                "this machine; use device='auto' (CUDA when present, else CPU) or 'cpu'"
            )
        if out.index is not None and out.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} "
                "CUDA device(s)"
            )
    elif out.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available on this machine"
        )
    return out


def resolve_dtype(dtype) -> torch.dtype:
    """Accept a torch dtype, its name (``"float64"``, ``"float32"``) or a numpy dtype.

    Parameters
    ----------
    dtype : torch.dtype, str, numpy.dtype or type
        A torch dtype is returned as is. A string is looked up as an attribute
        of :mod:`torch`, so it takes *torch's* meaning: ``"float"`` is
        ``torch.float32`` and ``"double"`` ``torch.float64``, whereas numpy and
        xarray read ``"float"`` as float64. Spell the width (``"float64"``)
        to avoid the ambiguity; numpy-only codes such as ``"f8"`` are
        rejected. A numpy dtype or a type (``np.float32``, Python's
        ``float``, which numpy makes float64) converts as numpy reads it.

    Returns
    -------
    torch.dtype
        Not necessarily floating (``"int64"`` passes); callers check.

    Raises
    ------
    TypeError
        For anything else.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.utils import resolve_dtype
    >>> resolve_dtype("float32")
    torch.float32
    >>> resolve_dtype(np.float64)
    torch.float64

    The string ``"float"`` is torch's single precision, the type ``float`` numpy's double:

    >>> resolve_dtype("float"), resolve_dtype(float)
    (torch.float32, torch.float64)
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and hasattr(torch, dtype):
        out = getattr(torch, dtype)
        if isinstance(out, torch.dtype):
            return out
    if isinstance(dtype, type) or isinstance(dtype, np.dtype):
        return torch.from_numpy(np.zeros(1, dtype=dtype)).dtype
    raise TypeError(f"dtype must be a torch dtype or its name, got {dtype!r}")


def torch_generator(random_state, device="cpu", seed_from_int=int) -> torch.Generator:
    """A :class:`torch.Generator` for one call, seeded the way scikit-learn reads ``random_state``.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None
        An int gives the same draws at every call. None draws a seed from
        numpy's global random state, an instance draws it from that instance: each
        call then gives new draws, as scikit-learn's estimators do.
    device : str or torch.device, default="cpu"
        Where the generator lives (a CUDA generator for draws made on the GPU).
    seed_from_int : callable, default=int
        Maps an int ``random_state`` to the torch seed (an estimator that derives
        its prediction stream from its training seed passes that map).

    Returns
    -------
    torch.Generator

    Examples
    --------
    >>> from xdyn.utils import torch_generator
    >>> a = torch_generator(0).initial_seed()
    >>> a == torch_generator(0).initial_seed()
    True
    """
    if is_integer(random_state):
        seed = int(seed_from_int(int(random_state)))
    else:  # None: a seed from numpy's global random state, new at every call
        seed = int_seed(check_random_state(None) if random_state is None else random_state)
    return torch.Generator(device=device).manual_seed(seed)


def int_seed(random_state):
    """An int seed from ``random_state``: an int as it is, an instance draws one, None stays None.

    The seed of a torch component (a skorch net, a generator) from a scikit-learn
    style ``random_state``: an instance's draw advances it, so each call differs.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None

    Returns
    -------
    int or None

    Examples
    --------
    >>> import numpy as np
    >>> int_seed(3), int_seed(None), int_seed(np.random.RandomState(0))
    (3, None, 209652396)
    """
    if random_state is None:
        return None
    if is_integer(random_state):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state!r}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise TypeError("random_state must be an int, a numpy RandomState or Generator, or None; "
                    f"got {random_state!r}")
