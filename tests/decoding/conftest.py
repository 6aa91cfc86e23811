"""Test doubles for the decoding tests: a tiny bidirectional masked LM with the model CONTRACT's forward.

``DoubleLM`` is float64 (so batched vs per-row computations agree far below any argmax/top-k gap) and uses
a relative-position attention bias, so a left-padded row with an attention mask computes what the same row
computes alone. It records every call (inputs, attention mask, logits_range, train/eval mode).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

VOCAB = 23
MASK_ID = 22
PAD_ID = 0
EOS_ID = 1


class DoubleLM(nn.Module):
    """Embedding + one bidirectional attention layer (relative position bias) + untied head, float64."""

    def __init__(self, vocab: int = VOCAB, dim: int = 12, max_rel: int = 16, seed: int = 0, max_len: int = 512):
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def p(*shape: int, scale: float = 1.0) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g, dtype=torch.float64) * scale)

        self.config = SimpleNamespace(
            vocab_size=vocab, max_sequence_length=max_len, mask_token_id=MASK_ID, eos_token_id=EOS_ID
        )
        self.max_rel = max_rel
        self.emb = p(vocab, dim)
        self.wq, self.wk, self.wv, self.wo = (p(dim, dim, scale=dim**-0.5) for _ in range(4))
        self.rel = p(2 * max_rel + 1, scale=2.0)
        self.head = p(vocab, dim, scale=0.8)
        self.dropout = nn.Dropout(0.5)  # makes train mode visible in the outputs
        self.calls: list[dict] = []

    def forward(self, input_ids, attention_mask=None, logits_range=None):
        self.calls.append(
            {
                "input_ids": input_ids.clone(),
                "attention_mask": None if attention_mask is None else attention_mask.clone(),
                "logits_range": logits_range,
                "training": self.training,
                "grad": torch.is_grad_enabled(),
            }
        )
        h = self.emb[input_ids]  # [B, T, D]
        T = input_ids.shape[1]
        pos = torch.arange(T)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_rel, self.max_rel) + self.max_rel  # [T, T]
        scores = (h @ self.wq) @ (h @ self.wk).transpose(1, 2) / math.sqrt(h.shape[-1]) + self.rel[rel]
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        h = 0.3 * h + torch.tanh(3.0 * self.dropout(torch.softmax(scores, dim=-1) @ (h @ self.wv)) @ self.wo)
        if logits_range is not None:
            h = h[:, logits_range[0] : logits_range[1]]
        return SimpleNamespace(logits=h @ self.head.T)


class NoRangeLM(DoubleLM):
    """Same network without ``logits_range`` support (the sampler must slice full logits)."""

    def forward(self, input_ids, attention_mask=None):
        return super().forward(input_ids, attention_mask=attention_mask)


def left_padded(lengths: list[int], seed: int = 0, vocab: int = VOCAB) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts (no mask/pad ids) of the given lengths, left-padded with PAD_ID, and their mask."""
    g = torch.Generator().manual_seed(seed)
    P = max(lengths)
    ids = torch.full((len(lengths), P), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(lengths), P), dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, P - n :] = torch.randint(2, vocab - 1, (n,), generator=g)
        mask[r, P - n :] = 1
    return ids, mask


@pytest.fixture
def model() -> DoubleLM:
    return DoubleLM()


def model_prompts(model, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded random prompts of ``lengths`` for a LLaDA model (its special tokens excluded)."""
    cfg = model.config
    special = {cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id}
    vocab = model.get_output_embeddings().weight.shape[0]
    allowed = torch.tensor([v for v in range(vocab) if v not in special])
    g = torch.Generator().manual_seed(seed)
    P = max(lengths)
    ids = torch.full((len(lengths), P), cfg.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(lengths), P), dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, P - n :] = allowed[torch.randint(len(allowed), (n,), generator=g)]
        mask[r, P - n :] = 1
    return ids, mask
