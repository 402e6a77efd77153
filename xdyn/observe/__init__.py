"""Observation operators and synthetic observations.

An operator maps a system state to observations. Every operator here works in
two worlds:

* on a flat, batched torch state ``(..., n_state)`` through :meth:`apply`
  (differentiable; this is what assimilators and learned models call), and
* on a labelled Dataset through :func:`observe`, which draws noisy
  observations with an ``obs`` dim whose coordinates locate each observation.

The state layout (which variables, which dims) comes from a system's
``variables`` or is read off a Dataset with :func:`layout_from_dataset`.
"""

from xdyn.observe._layout import SAMPLE_DIMS, layout_from_dataset
from xdyn.observe.base import (OPERATORS, ObservationOperator, operator_from_spec,
                               registered_operators)
from xdyn.observe.operators import (Arctan, EveryKth, GridPoints, Identity, RandomPoints,
                                    SelectVariables, Squared, make_operator)
from xdyn.observe.scaling import ObservationScaler, ScaledOperator
from xdyn.observe.synthetic import observe

__all__ = [
    "ObservationOperator",
    "Identity",
    "SelectVariables",
    "EveryKth",
    "Squared",
    "Arctan",
    "RandomPoints",
    "GridPoints",
    "make_operator",
    "operator_from_spec",
    "registered_operators",
    "layout_from_dataset",
    "observe",
    "ObservationScaler",
    "ScaledOperator",
]
