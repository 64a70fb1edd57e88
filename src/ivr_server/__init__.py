"""ivr-server: an open, drop-in-compatible IVR Server (IVR XML protocol over GLI)."""

import os
from importlib.machinery import EXTENSION_SUFFIXES

__version__ = "0.1.0"

__all__ = ["__version__", "compiled_modules"]


def compiled_modules() -> list[str]:
    """This package's modules that run as compiled extension modules, whether imported yet or
    not (the simulator's modules are not imported by ``serve``): the hot path of the compiled
    build (``pip install .`` with a C compiler at hand, docs/performance.md); empty for the
    pure-Python package."""
    suffixes = tuple(EXTENSION_SUFFIXES)
    root = os.path.dirname(os.path.abspath(__file__))
    found = []
    for folder, _dirs, files in os.walk(root):
        package = os.path.relpath(folder, root).replace(os.sep, ".")
        prefix = "ivr_server." if package == "." else f"ivr_server.{package}."
        for file in files:
            for suffix in suffixes:
                if file.endswith(suffix):
                    found.append(prefix + file[: -len(suffix)])
                    break
    return sorted(found)
