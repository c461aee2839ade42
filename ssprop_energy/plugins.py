"""Named plug-ins (training methods, tasks): registered in code, or by another package through
a Python entry point group, without editing this project."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import ClassVar, Generic, Protocol, TypeVar

from .errors import UserError


class Named(Protocol):
    name: ClassVar[str]


T = TypeVar("T", bound=type[Named])


class Registry(Generic[T]):
    """Classes by their ``name``. Entry points of ``group`` are loaded on first lookup; an
    entry point's name must equal its class's ``name``. Two classes under one name are an
    error, whichever way they were registered."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._classes: dict[str, T] = {}
        self._loaded = False

    def register(self, cls: T) -> T:
        """Class decorator: add ``cls`` under ``cls.name``."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{cls.__qualname__}: a {self.kind} needs a class attribute 'name'")
        known = self._classes.get(name)
        if known is not None and known is not cls:
            raise ValueError(
                f"{self.kind} {name!r} is already registered by {known.__module__}."
                f"{known.__qualname__}"
            )
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests, interactive sessions)."""
        self._classes.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for point in entry_points(group=self.group):
            try:
                cls = point.load()
            except Exception as exc:
                raise UserError(
                    f"entry point {point.name!r} of {self.group}: cannot load {point.value} "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            if getattr(cls, "name", None) != point.name:
                raise UserError(
                    f"entry point {point.name!r} of {self.group}: {point.value} has name "
                    f"{getattr(cls, 'name', None)!r}"
                )
            self.register(cls)

    def names(self) -> list[str]:
        self._load_entry_points()
        return list(self._classes)

    def get(self, name: str) -> T:
        """The class registered as ``name``; a ValueError listing the known names otherwise."""
        self._load_entry_points()
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r} (known: {', '.join(self._classes)})"
            ) from None
