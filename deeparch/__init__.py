"""deeparch: a playground core for learning deep architectures (no UI code lives here)."""

__version__ = "0.1.0"
