"""micforge: a declarative build system and code generator for on-device sound classification."""

__version__ = "0.1.0"
