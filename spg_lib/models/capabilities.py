"""What a model exposes for computing logits: the one probe the sampler, the likelihood and the trainer share.

    caps = probe(model)
    caps.hidden_head    # hidden_states(ids, attention_mask=, output_range=) and logits_from_hidden(h, out=)
    caps.linear_head    # an nn.Linear head with logits == hidden_states(ids) @ weight.T (+ bias), or None
    caps.logits_range   # forward(ids, attention_mask=, logits_range=(s, e)) runs the head on s..e-1 only
    caps.kv_cache       # hidden_states_kv(ids, attention_mask=, output_range=) -> (hidden, cache) and
                        # hidden_states_cached(slice_ids, kv_cache, slice_range, output_range=) (block KV cache of
                        # the fast sampler, spg_lib.decoding.cached), with the hidden head
    caps.kv_row_chunk   # hidden_states_kv also takes row_chunk= (rows per pass into one preallocated cache)

Duck-typed (signatures and attributes, never ``isinstance`` on a model class), so it imports no model code and
sees through wrappers that forward attribute access (PEFT). A model that exposes none of these is called as
``model(ids, attention_mask=...).logits`` and sliced. ``ForwardOnly(model)`` is a view that exposes only the
wrapped module's ``forward`` (with ``logits_range``): for parameters sharded by FSDP / ZeRO-3, which exist in
full only inside the prepared model's forward, so every shortcut around it must be hidden.

Test: ``pytest tests/models/test_capabilities.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import torch


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """How logits can be obtained from a model (see the module docstring)."""

    hidden_head: bool
    linear_head: torch.nn.Linear | None
    logits_range: bool
    kv_cache: bool = False
    kv_row_chunk: bool = False


def _accepts(fn: Callable[..., Any] | None, *names: str) -> bool:
    if not callable(fn):
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return all(name in params for name in names)


def probe(model: Any) -> Capabilities:
    """The ways ``model`` offers to compute logits.

    ``linear_head`` is set only when the output head is a plain ``nn.Linear`` and the model does not post-scale
    its logits (LLaDA config ``scale_logits``): a head wrapped by an adapter (e.g. a PEFT LoRA layer) has a
    ``weight`` that is not the whole projection, so the model's own logits must be used.
    """
    hidden_states = getattr(model, "hidden_states", None)
    hidden_head = _accepts(hidden_states, "output_range") and _accepts(getattr(model, "logits_from_hidden", None),
                                                                        "out")
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    scaled = bool(getattr(getattr(model, "config", None), "scale_logits", False))
    plain = isinstance(head, torch.nn.Linear) and not scaled and callable(hidden_states)
    kv_cache = hidden_head and _accepts(getattr(model, "hidden_states_kv", None), "attention_mask", "output_range") \
        and _accepts(getattr(model, "hidden_states_cached", None), "kv_cache", "slice_range", "output_range")
    return Capabilities(hidden_head=hidden_head, linear_head=head if plain else None,
                        logits_range=_accepts(getattr(model, "forward", None), "logits_range"), kv_cache=kv_cache,
                        kv_row_chunk=kv_cache and _accepts(getattr(model, "hidden_states_kv", None), "row_chunk"))


class ForwardOnly(torch.nn.Module):
    """A view of ``model`` exposing only its ``forward`` (``probe`` then reports just ``logits_range``)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner = model
        self.training = model.training

    def forward(self, input_ids, attention_mask=None, logits_range=None, **kwargs):
        return self.inner(input_ids, attention_mask=attention_mask, logits_range=logits_range, **kwargs)
