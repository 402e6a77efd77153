"""Parameters as plain JSON data, for the specs and attrs that rebuild objects (private)."""

from __future__ import annotations

import numpy as np
import torch


def plain(value):
    """``value`` as JSON data that reads back as the same parameter.

    numpy scalars become Python numbers (``np.int64(3)``: ``3``, not ``"3"``;
    ``np.bool_(False)``: ``False``, whose ``str`` would read back as true),
    arrays and tensors nested lists, dtypes their names (``"float32"``), lists,
    tuples and dicts are converted item by item. Anything else (a
    ``RandomState``) falls back to its ``str``: recorded, not rebuilt.

    Examples
    --------
    >>> import json, numpy as np
    >>> json.dumps(plain({"k": np.int64(3), "F": np.array([8.0, 9.0]), "on": np.bool_(0)}))
    '{"k": 3, "F": [8.0, 9.0], "on": false}'
    """
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    # a dtype as its canonical name ("float32"), which resolve_dtype reads back
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, np.dtype) or (isinstance(value, type)
                                       and issubclass(value, (np.generic, float))):
        return np.dtype(value).name
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return str(value)
