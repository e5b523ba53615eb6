"""AutoCoNN: from input/output examples to a verified, compiled transformer (CoNN)."""

__version__ = "0.1.0"
