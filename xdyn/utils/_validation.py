"""Parameter-constraint classes shared by every layer (scikit-learn's mechanism).

scikit-learn's ``Interval`` refuses NaN but accepts ``inf``; a learning rate or
a noise level must be finite.
"""

from __future__ import annotations

from numbers import Real  # noqa: F401 - used in the doctest

import numpy as np
from sklearn.utils._param_validation import Interval

__all__ = ["FiniteInterval"]


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
