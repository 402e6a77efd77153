"""Dynamical systems as batched, differentiable torch models that simulate to Datasets."""

from xdyn.systems.base import DynamicalSystem, StateVariable
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.kolmogorov import KolmogorovFlow
from xdyn.systems.pendulum import DampedPendulum
from xdyn.systems.reaction_diffusion import ReactionDiffusion
from xdyn.systems.rlc import RLCCircuit
from xdyn.systems.shallow_water import ShallowWater
from xdyn.systems.two_scale_lorenz96 import TwoScaleLorenz96
from xdyn.systems.kuramoto_sivashinsky import KuramotoSivashinsky
from xdyn.systems.lyapunov import lyapunov_exponents

__all__ = [
    "DynamicalSystem", "StateVariable", "Lorenz63", "Lorenz96",
    "KolmogorovFlow", "ReactionDiffusion", "ShallowWater", "DampedPendulum", "RLCCircuit",
    "TwoScaleLorenz96", "KuramotoSivashinsky", "lyapunov_exponents",
]
