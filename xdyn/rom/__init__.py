"""Reduced-order models: latent coordinates of fields, and their dynamics."""

from xdyn.rom.ldnet import LDNet
from xdyn.rom.latent_transformer import LatentTransformerROM
from xdyn.rom.pod import POD, PODLinearDynamics

__all__ = ["LDNet", "LatentTransformerROM", "POD", "PODLinearDynamics"]
