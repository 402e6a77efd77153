"""Fixtures of the ROM tests."""

import pytest


@pytest.fixture
def windows_made(monkeypatch):
    """The training ``Windows`` that ``LatentTransformerROM.fit`` makes, in order."""
    import xdyn.rom.latent_transformer as module

    made = []

    class Spy(module.Windows):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self)

    monkeypatch.setattr(module, "Windows", Spy)
    return made
