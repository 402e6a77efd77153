"""Dynamical systems as batched, differentiable torch models that simulate to Datasets."""

from xdyn.systems.base import DynamicalSystem, StateVariable
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.kolmogorov import KolmogorovFlow
from xdyn.systems.pendulum import DampedPendulum
from xdyn.systems.reaction_diffusion import ReactionDiffusion
from xdyn.systems.rlc import RLCCircuit

__all__ = [
    "DynamicalSystem", "StateVariable", "Lorenz63", "Lorenz96",
    "KolmogorovFlow", "ReactionDiffusion", "DampedPendulum", "RLCCircuit",
]
