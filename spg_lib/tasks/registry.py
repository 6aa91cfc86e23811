"""Tasks by name: `get_task("gsm8k")`, `list_tasks()`, `register_task(cls)`.

Registering a name twice raises; an unknown name raises a ValueError listing the valid ones.
"""

from __future__ import annotations

from spg_lib.tasks.base import Task

__all__ = ["get_task", "list_tasks", "register_task"]

_REGISTRY: dict[str, type[Task]] = {}
_ALIASES = {"math": "math500", "gsm": "gsm8k", "ctd": "countdown"}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a `Task` subclass under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} has no task name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"task {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls


def _ensure_builtin() -> None:
    # importing the modules runs their @register_task decorators
    from spg_lib.tasks import countdown, gsm8k, math500, sudoku  # noqa: F401


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    _ensure_builtin()
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """A fresh instance of the task called `name` (aliases: math, gsm, ctd).

    Raises:
        ValueError: unknown name; the message lists the registered names.
    """
    _ensure_builtin()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]()
