from xdyn._version import __version__
