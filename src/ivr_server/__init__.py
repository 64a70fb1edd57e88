"""ivr-server: an open, drop-in-compatible IVR Server (IVR XML protocol over GLI)."""

import sys
from importlib.machinery import EXTENSION_SUFFIXES

__version__ = "0.1.0"

__all__ = ["__version__", "compiled_modules"]


def compiled_modules() -> list[str]:
    """This package's modules, among those imported so far, that run as compiled extension
    modules: the hot path of the compiled build (``pip install .`` with a C compiler at hand,
    docs/performance.md); empty for the pure-Python package."""
    suffixes = tuple(EXTENSION_SUFFIXES)
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("ivr_server.")
        and str(getattr(module, "__file__", None) or "").endswith(suffixes)
    )
