"""Exceptions raised by xdyn."""

from __future__ import annotations

__all__ = ["DivergenceError"]


class DivergenceError(RuntimeError):
    """A simulation or a filter produced non-finite values.

    Parameters
    ----------
    message : str
        What diverged.
    time : float or datetime, optional
        Model time at which the state first became non-finite; stored as
        ``.time``.

    Examples
    --------
    >>> err = DivergenceError("EnKF analysis is non-finite", time=12.5)
    >>> err.time
    12.5
    """

    def __init__(self, message: str, time=None):
        self.time = time
        if time is not None:
            message = f"{message} (at time {time})"
        super().__init__(message)
