"""Name registries for the axes the paper varies.

Registries: ``FORWARD_PROCESSES`` (masking schemes), ``NEG_ESTIMATORS`` (negative-trace likelihood
estimator of SPG), ``OBJECTIVES`` (policy losses), ``ADVANTAGES`` and ``METHODS`` (one
``spg_lib.algos.methods.MethodSpec`` per RL method: estimator, loss, needs, seed policy). Registering a
name twice raises; an unknown name raises a ValueError that lists the valid names. Nothing else gets a
registry.

    from spg_lib.algos.registry import get_objective
    loss_fn = get_objective("spg")

The ``get_*`` helpers import the modules that register their entries, so importing this module alone
is enough to look any name up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

F = TypeVar("F")

# modules whose import registers entries (imported lazily to avoid import cycles)
_PROVIDERS = ("spg_lib.algos.masking", "spg_lib.algos.likelihood", "spg_lib.algos.objectives",
              "spg_lib.algos.advantages", "spg_lib.algos.methods")


class Registry(Generic[F]):
    """A name -> function (or spec) map with decorator registration, duplicate and unknown-name errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``; a second registration of ``name`` raises ValueError."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def deco(fn: F) -> F:
            if name in self._items:
                owner = getattr(self._items[name], "__qualname__", type(self._items[name]).__name__)
                raise ValueError(f"{self.kind} {name!r} is already registered (by {owner})")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> F:
        """The function registered under ``name``; unknown names raise ValueError listing the valid ones."""
        _load_providers()
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {self.names()}") from None

    def names(self) -> list[str]:
        _load_providers()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        _load_providers()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _load_providers() -> None:
    for module in _PROVIDERS:
        importlib.import_module(module)


FORWARD_PROCESSES: Registry = Registry("forward process")
NEG_ESTIMATORS: Registry = Registry("negative estimator")
OBJECTIVES: Registry = Registry("objective")
ADVANTAGES: Registry = Registry("advantage")
METHODS: Registry = Registry("method")


def get_forward_process(name: str) -> Callable:
    return FORWARD_PROCESSES.get(name)


def get_neg_estimator(name: str) -> Callable:
    return NEG_ESTIMATORS.get(name)


def get_objective(name: str) -> Callable:
    return OBJECTIVES.get(name)


def get_advantage(name: str) -> Callable:
    return ADVANTAGES.get(name)
