"""Parameters as plain JSON data, for the specs and attrs that rebuild objects (private)."""

from __future__ import annotations

import ast
import inspect
import warnings

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


def read_legacy_strings(cls, params: dict, where: str) -> dict:
    """``params`` for ``cls`` with the strings older attrs wrote for numbers read back.

    Before :func:`plain`, specs and system records stored numpy values by their
    ``str``: ``"3"`` for ``np.int64(3)``, ``"False"``, ``"['u']"`` for a list and
    ``"[1. 2.]"`` for an array. A string is read back only where the constructor's
    default is a number or bool (``"3"`` for ``k=4``), or where it is written as a
    list (``"['u']"``, never a variable's name); everything else is kept. A
    ``UserWarning`` names what was read, so a rewritten file can replace the old one.

    Examples
    --------
    >>> import warnings
    >>> from xdyn.observe import EveryKth
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     read_legacy_strings(EveryKth, {"k": "3", "variables": "['u']"}, "EveryKth")
    {'k': 3, 'variables': ['u']}
    """
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
    read = {}
    for name, value in params.items():
        if isinstance(value, str) and name in defaults:
            new = _legacy_value(value, defaults[name])
            if new is not value:
                read[name] = new
    if read:
        warnings.warn(f"{where}: read {sorted(read)} from the strings that attrs written by an "
                      f"older xdyn stored for numbers and lists; write the data again to "
                      f"store them as numbers", UserWarning, stacklevel=3)
    return {**params, **read}


def _legacy_value(text: str, default):
    """``text`` read as the number, bool or list an older xdyn wrote; ``text`` itself
    (the same object) where it is not one."""
    if isinstance(default, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(default, (int, float)):
        try:  # an int parameter given "8.0" gets 8.0, which its own check names
            return int(text) if isinstance(default, int) else float(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    if text.startswith(("[", "(")) and text.endswith(("]", ")")):
        try:
            return list(ast.literal_eval(text))
        except (ValueError, SyntaxError, TypeError):
            try:  # numpy's array str, "[1. 2. 3.]": no commas
                return [float(item) for item in text[1:-1].split()]
            except ValueError:
                return text
    return text
