"""Small helpers every layer of xdyn may use; this package imports nothing else from xdyn.

Examples
--------
>>> from xdyn.utils import resolve_device, resolve_dtype
>>> resolve_dtype("float64")
torch.float64
"""

from xdyn.utils._torch import int_seed, resolve_device, resolve_dtype, torch_generator

__all__ = ["int_seed", "resolve_device", "resolve_dtype", "torch_generator"]
