"""Reduced-order models: latent coordinates of fields, and their dynamics."""

from xdyn.rom.pod import POD, PODLinearDynamics

__all__ = ["POD", "PODLinearDynamics"]
