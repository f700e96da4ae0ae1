"""A stand-in ``torchvision`` for importing the reference metric packages offline.

pytorch-fid and torch-fidelity import torchvision at module import, although their
metric functions fed with features never use it; the real wheel here is a CUDA build
that fails to import with the CPU torch. Installing this finder makes every
``torchvision[.x.y]`` import an empty package whose capitalised attributes are inert
classes (so ``class A(torchvision.models.inception.InceptionA)`` still defines).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _Inert:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision stand-in: this class is not usable in tests")


class _StandinModule(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        if name == "__version__":
            return "0.0.0"
        if name.startswith("__"):
            raise AttributeError(name)
        if name[:1].isupper():
            cls = type(name, (_Inert,), {})
            setattr(self, name, cls)
            return cls
        full = f"{self.__name__}.{name}"
        module = sys.modules.get(full) or _make(full)
        setattr(self, name, module)
        return module


def _make(name: str) -> _StandinModule:
    module = _StandinModule(name)
    module.__path__ = []
    module.__spec__ = importlib.machinery.ModuleSpec(name, _Finder, is_package=True)
    sys.modules[name] = module
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, cls, is_package=True)
        return None

    @classmethod
    def create_module(cls, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return sys.modules.get(spec.name) or _make(spec.name)

    @classmethod
    def exec_module(cls, module: types.ModuleType) -> None:
        return None


def install() -> None:
    """Put the stand-in first on ``sys.meta_path`` (idempotent)."""
    if _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)
