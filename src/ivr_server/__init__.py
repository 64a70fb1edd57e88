"""ivr-server: an open, drop-in-compatible IVR Server (IVR XML protocol over GLI)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
