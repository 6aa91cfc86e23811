"""spg_lib.models.capabilities.probe: what the native model, a forward-only view, a scaled head and a bare
logits model expose — the one answer the sampler, the likelihood and the trainer use."""

from __future__ import annotations

import torch

from spg_lib.decoding._common import supports_hidden_head, supports_logits_range
from spg_lib.models import init_tiny_model
from spg_lib.models.capabilities import ForwardOnly, probe


class _LogitsOnly(torch.nn.Module):
    def forward(self, input_ids, attention_mask=None):
        return input_ids


def test_native_model_exposes_every_path() -> None:
    model = init_tiny_model(seed=0)
    caps = probe(model)
    assert caps.hidden_head and caps.logits_range
    assert isinstance(caps.linear_head, torch.nn.Linear)
    assert caps.linear_head.weight is model.get_output_embeddings().weight
    assert supports_hidden_head(model) and supports_logits_range(model)


def test_forward_only_view_hides_the_shortcuts_and_matches_the_model() -> None:
    model = init_tiny_model(seed=0).eval()
    view = ForwardOnly(model)
    caps = probe(view)
    assert (caps.hidden_head, caps.linear_head, caps.logits_range) == (False, None, True)
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(view(ids, logits_range=(2, 6)).logits, model(ids).logits[:, 2:])


def test_scaled_logits_and_bare_models_fall_back() -> None:
    model = init_tiny_model(seed=0)
    model.config.scale_logits = True  # logits = (hidden @ Wᵀ)/√d: not the plain head the likelihood reads
    assert probe(model).linear_head is None and probe(model).hidden_head
    caps = probe(_LogitsOnly())
    assert (caps.hidden_head, caps.linear_head, caps.logits_range) == (False, None, False)
