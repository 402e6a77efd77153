"""``save_params`` / ``load_params`` of the assimilators that hold a skorch net in ``net_``.

One file holds the net's parameters and the estimator's fitted attributes
(``name_``), pickled by :func:`torch.save`. Written to a path, it goes through a
temporary file that is moved into place when complete (an interrupted save
leaves the previous file, never half of a new one); read back, the estimator is
changed only when everything loaded, so a failed load leaves it as it was
rather than fitted-looking with an untrained net.
"""

from __future__ import annotations

import io
import os

import torch
from sklearn.utils.validation import check_is_fitted

from xdyn.datasets._atomic import atomic_path

__all__ = ["save_fitted", "load_fitted"]


def save_fitted(estimator, f, **extra):
    """Write ``estimator.net_``'s parameters, its fitted attributes and ``extra`` to ``f``.

    ``f`` is a path (written atomically) or a writable binary file object.
    """
    check_is_fitted(estimator, "net_")
    buf = io.BytesIO()
    estimator.net_.save_params(f_params=buf)
    fitted = {k: v for k, v in vars(estimator).items()
              if k.endswith("_") and not k.startswith("_") and k != "net_"}
    blob = {"estimator": type(estimator).__name__, "net": buf.getvalue(), "fitted": fitted,
            **extra}
    if isinstance(f, (str, os.PathLike)):
        with atomic_path(f) as tmp:
            torch.save(blob, tmp)
    else:
        torch.save(blob, f)


def load_fitted(estimator, f, make_net, required=()):
    """Restore what :func:`save_fitted` wrote into ``estimator``; returns it.

    ``make_net(blob)`` builds the (uninitialised) net once the fitted attributes
    are set; ``required`` names the ``extra`` entries the file must hold. A file
    that is not a complete save of this estimator's class, or whose net does not
    match the estimator's parameters, raises a ValueError naming the file, and
    the estimator keeps the state it had before.
    """
    name = type(estimator).__name__
    where = os.fspath(f) if isinstance(f, (str, os.PathLike)) else "the file object"
    try:
        blob = torch.load(f, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch reports a cut file as RuntimeError, others as pickle's
        raise ValueError(f"{name}.load_params: cannot read {where}: not a complete "
                         f"save_params file ({type(err).__name__}: {err})") from err
    lacking = sorted({"net", "fitted", *required} - set(blob if isinstance(blob, dict) else ()))
    if lacking:
        raise ValueError(f"{name}.load_params: {where} is not a {name}.save_params file "
                         f"(it lacks {lacking})")
    if blob.get("estimator", name) != name:  # files before 2026-12-07 do not say
        raise ValueError(f"{name}.load_params: {where} was written by "
                         f"{blob['estimator']}.save_params")
    before = dict(vars(estimator))
    try:
        for k, v in blob["fitted"].items():
            setattr(estimator, k, v)
        net = make_net(blob)
        net.initialize()
        net.load_params(f_params=io.BytesIO(blob["net"]))
    except BaseException as err:
        vars(estimator).clear()
        vars(estimator).update(before)
        if not isinstance(err, Exception):
            raise
        raise ValueError(f"{name}.load_params: the network in {where} does not match this "
                         f"estimator's parameters ({type(err).__name__}: {err}); load it into "
                         "an estimator with the parameters it was saved with") from err
    estimator.net_ = net
    return estimator
