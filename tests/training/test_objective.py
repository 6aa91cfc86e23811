"""spg_lib.training.objective: a model's completion log-probs over every model flavour (plain logits,
logits_range, hidden states + linear head, adapter-wrapped head), and the method registry driving estimate/loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spg_lib.training.objective import completion_token_logprobs


class _ToyLM(nn.Module):
    """Bidirectional toy: embedding, mean-pooled context, linear head; three API flavours."""

    def __init__(self, flavour: str, V: int = 13, D: int = 8) -> None:
        super().__init__()
        self.flavour = flavour
        gen = torch.Generator().manual_seed(3)
        self.emb = nn.Parameter(torch.randn(V, D, generator=gen))
        self.head = nn.Linear(D, V, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(V, D, generator=gen))

    def _hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        e = self.emb[ids]  # [N, T, D]
        am = torch.ones(ids.shape, dtype=e.dtype) if attention_mask is None else attention_mask.to(e.dtype)
        ctx = (e * am.unsqueeze(-1)).sum(1, keepdim=True) / am.sum(1, keepdim=True).unsqueeze(-1)
        return torch.tanh(e + ctx)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        h = self._hidden(input_ids, attention_mask)
        if "logits_range" in kwargs and kwargs["logits_range"] is not None:
            s, e = kwargs["logits_range"]
            h = h[:, s:e]
        return type("Out", (), {"logits": self.head(h)})()


class _WithHidden(_ToyLM):
    def hidden_states(self, input_ids, attention_mask=None):
        return self._hidden(input_ids, attention_mask)

    def get_output_embeddings(self):
        return self.head


class _WithRange(_ToyLM):
    def forward(self, input_ids, attention_mask=None, logits_range=None):
        return super().forward(input_ids, attention_mask, logits_range=logits_range)


@pytest.mark.parametrize("cls", [_ToyLM, _WithHidden, _WithRange])
def test_completion_token_logprobs_all_model_flavours(cls) -> None:
    model = cls("x")
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, 13, (3, 7), generator=g)
    am = torch.ones(3, 7, dtype=torch.long)
    am[0, :2] = 0
    targets = torch.randint(0, 13, (3, 4), generator=g)
    out = completion_token_logprobs(model, ids, am, targets, prompt_len=3, chunk_size=5)
    full = model(ids, attention_mask=am).logits[:, 3:]
    ref = torch.log_softmax(full, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    out.sum().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()


class _WrappedHead(nn.Module):
    """Adapter-style head: weight attribute is only part of the projection (like a LoRA-wrapped Linear)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base_layer, self.weight = base, base.weight
        self.delta = nn.Parameter(torch.full((base.out_features,), 0.5))

    def forward(self, h):
        return self.base_layer(h) + self.delta


class _WithAdapterHead(_WithHidden):
    def __init__(self, flavour: str) -> None:
        super().__init__(flavour)
        self.head = _WrappedHead(self.head)
        with torch.no_grad():
            self.head.delta[0] = 4.0


def test_adapter_wrapped_head_falls_back_to_logits() -> None:
    model = _WithAdapterHead("x")
    ids = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(0))
    targets = torch.zeros(2, 3, dtype=torch.long)
    out = completion_token_logprobs(model, ids, None, targets, prompt_len=3)
    ref = torch.log_softmax(model(ids).logits[:, 3:], -1)[..., 0]
    torch.testing.assert_close(out, ref)


def test_completion_token_logprobs_rejects_bad_prompt_len() -> None:
    with pytest.raises(ValueError, match="prompt_len"):
        completion_token_logprobs(_ToyLM("x"), torch.zeros(1, 5, dtype=torch.long), None,
                                  torch.zeros(1, 3, dtype=torch.long), prompt_len=1)


def test_completion_token_logprobs_on_tiny_llada() -> None:
    from spg_lib.models import init_tiny_model

    model = init_tiny_model(seed=0)
    V = model.get_output_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, V, (2, 10), generator=g)
    targets = torch.randint(0, V, (2, 6), generator=g)
    out = completion_token_logprobs(model, ids, None, targets, prompt_len=4, chunk_size=4)
    ref = torch.log_softmax(model(ids).logits[:, 4:].float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
