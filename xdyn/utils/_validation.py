"""Parameter-constraint classes shared by every layer (scikit-learn's mechanism).

scikit-learn's ``Interval`` refuses NaN but accepts ``inf``; a learning rate or
a noise level must be finite.
"""

from __future__ import annotations

from numbers import Integral, Real  # noqa: F401 - Real: used in the doctest

import numpy as np
from sklearn.utils._param_validation import Interval

__all__ = ["FiniteInterval", "is_integer"]


def is_integer(value) -> bool:
    """Whether ``value`` is an integer (Python's or numpy's) and not a bool.

    ``bool`` is an ``Integral`` for Python, but ``True`` is not a count: a flag
    passed where a size belongs is refused, not read as 1.

    Examples
    --------
    >>> import numpy as np
    >>> is_integer(3), is_integer(np.int64(3)), is_integer(True), is_integer(3.0)
    (True, True, False, False)
    """
    return isinstance(value, Integral) and not isinstance(value, bool)


class FiniteInterval(Interval):
    """An :class:`Interval` that also refuses ``inf`` (``Interval`` refuses only NaN).

    Examples
    --------
    >>> 3.0 in FiniteInterval(Real, 0, None, closed="neither")
    True
    >>> float("inf") in FiniteInterval(Real, 0, None, closed="neither")
    False
    """

    def __contains__(self, val):
        if not np.isfinite(val):
            return False
        return super().__contains__(val)

    def __str__(self):
        # "a float in the range ...": "a finite float in the range ..."
        return f"a finite {super().__str__().removeprefix('a ').removeprefix('an ')}"
