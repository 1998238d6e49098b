"""One registry per family of parameterizations: name -> factory, filled by a decorator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import nn

from ..errors import PhospheneError


class Registry:
    """Named factories of image parameterizations; iterates (and ``in``) over the names in order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., nn.Module]] = {}

    def register(self, name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        """Decorator: make ``factory`` buildable as ``name``."""
        def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            self._factories[name] = factory
            return factory
        return add

    def build(self, name: str, *args, **options) -> nn.Module:
        """The parameterization called ``name``; a `PhospheneError` naming the choices otherwise."""
        if name not in self._factories:
            raise PhospheneError(f"unknown {self.kind} {name!r}; choose from {', '.join(self)}")
        return self._factories[name](*args, **options)

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __getitem__(self, index: int) -> str:
        return list(self._factories)[index]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._factories)})"
