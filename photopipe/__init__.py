"""photopipe client side: the CLI that brings the stack up and drives it."""

__version__ = "0.1.0"
