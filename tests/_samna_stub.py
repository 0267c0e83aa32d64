"""A stand-in for ``samna`` while Rockpool's Xylo package is imported, for one test only.

On PyPI ``samna`` is a stub that downloads at import, and ``import rockpool.devices.xylo`` imports
it unguarded (``syns65302/afe_samna_pdm.py``). Rockpool's ``XyloSim`` itself runs on ``xylosim``
and never calls samna; every name under ``samna`` resolves here to an inert placeholder.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator


class _Any:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Any()

    def __getattr__(self, name):
        return _Any()

    def __mro_entries__(self, bases):
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Any()


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "samna" or name.startswith("samna."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


@contextlib.contextmanager
def samna_stubbed() -> Iterator[None]:
    """Resolve ``samna`` imports to placeholders inside the block; afterwards ``samna`` is gone again."""
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "samna" or n.startswith("samna.")]:
            del sys.modules[name]
