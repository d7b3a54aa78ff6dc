"""A module that is imported on its first attribute access, for a library that imports it too early.

dkimpy imports PyNaCl's signing module (cffi, libsodium) at its own import, for ed25519 keys, which
most messages never have. ``importlib.util.LazyLoader`` does not serve here: on Python 3.13 the
``import nacl.signing`` statement itself reads the lazy module's ``__spec__``, which loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()


class _Deferred(ModuleType):
    """Stands in ``sys.modules`` for the module of its name until an attribute is asked for."""

    def __getattr__(self, attribute: str) -> Any:  # only for what the stand-in itself lacks
        return getattr(self._load(), attribute)

    def _load(self) -> ModuleType:
        with _lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            module = importlib.import_module(self.__name__)  # binds the real one on its parent package
            self.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
            return module


def defer_import(name: str) -> ModuleType:
    """``name`` as a stand-in, unless it is imported already; ``ModuleNotFoundError`` when it is not installed."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:  # imports the parent package, which is what `import a.b` does
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    module = _Deferred(name)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does after loading a submodule
        setattr(sys.modules[parent], child, module)
    return module
