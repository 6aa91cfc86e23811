"""Leftover [M] tokens (a proposal that is the mask token itself) and the precision of the Gumbel noise.

``redecode_earlier_masks=True`` is the official code's behaviour: its confidence is -inf only at positions that
are not [M] or lie after the current block, so an earlier-block position still holding [M] competes for the
current block's transfer slots. The default (False) decodes the current block only. Hand-made model: the
logits of each generated position are a fixed table, one entry conditioned on the canvas, so every step of
both variants can be worked out by hand (docs/decoding.md, "Leftover mask tokens").
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import MASK_ID, DoubleLM, left_padded
from torch import nn

from spg_lib.decoding import generate, generate_reference
from spg_lib.decoding._common import draw_gumbel, gumbel_max, resolve_gumbel_dtype

V, M = 6, 5  # vocabulary of the scripted model and its mask id
PROMPT = torch.tensor([[0]])  # P = 1
KW = {"gen_length": 4, "block_length": 2, "steps": 4, "mask_id": M}  # 2 blocks, 2 steps each, 1 token per step


def _logits(token: int, prob: float) -> torch.Tensor:
    """Logits [V] whose softmax puts ``prob`` on ``token`` and spreads the rest evenly."""
    p = torch.full((V,), (1.0 - prob) / (V - 1), dtype=torch.float64)
    p[token] = prob
    return p.log()


class ScriptedLM(nn.Module):
    """Generated position g (g = q - P) has fixed logits: g0 -> token 1 (p .9), g2 -> 2 (.6), g3 -> 4 (.5);
    g1 -> the mask token (p ``g1_mask_prob``), or token 3 (.95) once g2 holds token 2 if ``g1_unlocks``."""

    def __init__(self, g1_mask_prob: float, g1_unlocks: bool):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=V, mask_token_id=M)
        self.g1_mask_prob, self.g1_unlocks = g1_mask_prob, g1_unlocks
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.canvases: list[list[int]] = []

    def forward(self, input_ids, attention_mask=None):
        B, T = input_ids.shape
        P = T - KW["gen_length"]
        out = torch.zeros((B, T, V), dtype=torch.float64)
        for r in range(B):
            row = input_ids[r, P:].tolist()
            self.canvases.append(row)
            out[r, P + 0] = _logits(1, 0.9)
            out[r, P + 1] = _logits(3, 0.95) if self.g1_unlocks and row[2] == 2 else _logits(M, self.g1_mask_prob)
            out[r, P + 2] = _logits(2, 0.6)
            out[r, P + 3] = _logits(4, 0.5)
        return SimpleNamespace(logits=out + self.anchor)


# (model, default completion, official completion), worked out by hand:
#  block 0: step 0 writes g0 = 1 (.9 beats g1's .55/.8); step 1 writes g1's proposal, [M]: g1 stays masked.
#  unlocks: block 1 step 0: g2 (.6) beats g1 (.55, still [M]) and g3 (.5) -> g2 = 2, which unlocks g1: at step 1
#    the official sampler writes g1 = 3 (.95) with the block's last slot, so g3 is left [M]; the default writes g3.
#  stuck: g1 proposes [M] at .8 whatever the canvas, beats g2/g3 at every step of block 1 and is rewritten with
#    [M] each time (greedy: the canvas never changes), so the official sampler never decodes block 1.
CASES = {
    "unlocks": (ScriptedLM(0.55, True), [1, M, 2, 4], [1, 3, 2, M]),
    "stuck": (ScriptedLM(0.8, False), [1, M, 2, 4], [1, M, M, M]),
}


@pytest.mark.parametrize("fn", [generate, generate_reference])
@pytest.mark.parametrize("case", sorted(CASES))
def test_leftover_mask_redecoded_only_when_asked(fn, case) -> None:
    model, default, official = CASES[case]
    assert fn(model, PROMPT, None, **KW)[0, 1:].tolist() == default
    assert fn(model, PROMPT, None, **KW, redecode_earlier_masks=True)[0, 1:].tolist() == official


def test_scripted_steps_of_the_official_variant() -> None:
    """The canvas the model sees before each of the 4 steps (unlocks case, official variant)."""
    model = ScriptedLM(0.55, True)
    generate(model, PROMPT, None, **KW, redecode_earlier_masks=True)
    assert model.canvases == [[M, M, M, M], [1, M, M, M], [1, M, M, M], [1, M, 2, M]]


class MaskProneLM(DoubleLM):
    """DoubleLM whose head favours the mask token, so sampled proposals are often [M]."""

    def forward(self, input_ids, attention_mask=None, logits_range=None):
        out = super().forward(input_ids, attention_mask=attention_mask, logits_range=logits_range)
        out.logits[..., MASK_ID] += 6.0
        return out


@pytest.mark.parametrize(
    ("temperature", "remasking", "gumbel_dtype"),
    [(0.0, "low_confidence", "float64"), (0.9, "low_confidence", "float64"), (0.9, "random", "float64"),
     (0.9, "low_confidence", "float32"), (1.2, "random", "bfloat16")],
)
def test_fast_equals_reference_with_leftovers(temperature, remasking, gumbel_dtype) -> None:
    ids, mask = left_padded([5, 2, 7, 4], seed=1)
    kw = {"gen_length": 12, "block_length": 4, "steps": 6, "mask_id": MASK_ID, "temperature": temperature,
          "remasking": remasking, "gumbel_dtype": gumbel_dtype}
    outs = {}
    for redecode in (False, True):
        fast = generate(MaskProneLM(), ids, mask, **kw, redecode_earlier_masks=redecode,
                        generator=torch.Generator().manual_seed(3))
        ref = generate_reference(MaskProneLM(), ids, mask, **kw, redecode_earlier_masks=redecode,
                                 generator=torch.Generator().manual_seed(3))
        assert torch.equal(fast, ref)
        outs[redecode] = fast
    P = ids.shape[1]
    first_blocks = outs[False][:, P : P + 8]
    assert bool((first_blocks == MASK_ID).any())  # leftovers exist in earlier blocks...
    assert not torch.equal(outs[False], outs[True])  # ...and the official variant revisits them


def test_default_never_writes_outside_the_current_block() -> None:
    """With leftovers present, the default sampler's earlier blocks are final once their block ends."""
    ids, mask = left_padded([5, 2, 7], seed=2)
    model = MaskProneLM()
    out = generate(model, ids, mask, gen_length=12, block_length=4, steps=6, mask_id=MASK_ID, temperature=1.0,
                   generator=torch.Generator().manual_seed(0))
    P = ids.shape[1]
    canvases = [c["input_ids"][:, -12:] for c in model.calls] + [out[:, P:]]  # 3 blocks x 2 steps
    for step in range(1, len(canvases)):
        done = 4 * ((step - 1) // 2)  # columns of the blocks finished before this step's block
        assert torch.equal(canvases[step][:, :done], canvases[step - 1][:, :done])
    assert bool((out[:, P:] == MASK_ID).any())


def test_gumbel_max_forms() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    u = torch.tensor([[0.99, 0.5, 0.01]], dtype=torch.float64)
    g = -torch.log(-torch.log(u))  # float64 noise is Gumbel: argmax(l / τ + g)
    scores = [lv / 0.5 + gv for lv, gv in zip(logits[0].tolist(), g[0].tolist())]
    assert int(gumbel_max(logits, g, 0.5)[0]) == max(range(3), key=scores.__getitem__) == 0
    e = (-torch.log(u)).float()  # other dtypes: official form argmax(exp(l) / e^τ), same argmax in exact arithmetic
    official = [math.exp(lv) / ev**0.5 for lv, ev in zip(logits[0].tolist(), e[0].tolist())]
    assert int(gumbel_max(logits, e, 0.5)[0]) == max(range(3), key=official.__getitem__) == 0
    # in bf16/fp32 exp overflows to inf and argmax takes the first maximum: the official quirk is reproduced
    big = torch.tensor([[100.0, 200.0]])
    assert int(gumbel_max(big, torch.ones((1, 2), dtype=torch.bfloat16), 1.0)[0]) == 0
    assert int(gumbel_max(big, torch.zeros((1, 2), dtype=torch.float64), 1.0)[0]) == 1


def test_gumbel_draws_and_dtype_resolution() -> None:
    g = torch.Generator().manual_seed(0)
    noise = draw_gumbel((2, 3), torch.Generator().manual_seed(0), torch.device("cpu"), torch.float32)
    u = torch.rand((2, 3), generator=g, dtype=torch.float32)
    assert noise.dtype == torch.float32 and torch.equal(noise, -torch.log(u))
    assert resolve_gumbel_dtype(DoubleLM(), "model") == torch.float64
    assert resolve_gumbel_dtype(DoubleLM().to(torch.bfloat16), "model") == torch.bfloat16
    assert resolve_gumbel_dtype(object(), "model") == torch.float32
    assert resolve_gumbel_dtype(DoubleLM(), "float32") == torch.float32


def test_generator_consumption_in_low_precision() -> None:
    """gumbel_dtype float32: per step one rand((B, K, V), float32); nothing else at low_confidence."""
    ids, mask = left_padded([3, 4])
    g = torch.Generator().manual_seed(5)
    generate(DoubleLM(), ids, mask, gen_length=8, block_length=4, steps=4, mask_id=MASK_ID, temperature=1.0,
             gumbel_dtype="float32", generator=g)
    expected = torch.Generator().manual_seed(5)
    for _ in range(4):
        torch.rand((2, 4, 23), generator=expected, dtype=torch.float32)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=expected))


@pytest.mark.parametrize("fn", [generate, generate_reference])
@pytest.mark.parametrize(("kw", "name"), [({"redecode_earlier_masks": 1}, "redecode_earlier_masks"),
                                          ({"gumbel_dtype": "float16"}, "gumbel_dtype")])
def test_bad_flags_name_the_argument(fn, kw, name) -> None:
    with pytest.raises(ValueError, match=name):
        fn(DoubleLM(), *left_padded([3]), gen_length=8, block_length=4, steps=4, mask_id=MASK_ID, **kw)


def test_native_model_hidden_head_with_leftovers() -> None:
    """The native model's block-only output head, widened to the leftovers, equals the full-logits reference."""
    from spg_lib.models import init_tiny_model

    tiny = init_tiny_model(seed=0)
    cfg = tiny.config
    head = tiny.get_output_embeddings().weight  # [V, D]
    with torch.no_grad():
        head[cfg.mask_token_id] = head[25] * 1.3  # the mask token competes with a token the model often picks
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 40, (3, 6), generator=g)
    mask = torch.ones_like(ids)
    ids[0, :2], mask[0, :2] = cfg.pad_token_id, 0
    leftovers = 0
    for temperature, remasking in [(1.0, "low_confidence"), (0.8, "random")]:
        kw = {"gen_length": 16, "block_length": 4, "steps": 8, "mask_id": cfg.mask_token_id,
              "temperature": temperature, "remasking": remasking, "redecode_earlier_masks": True}
        fast = generate(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(1))
        ref = generate_reference(tiny, ids, mask, **kw, generator=torch.Generator().manual_seed(1))
        assert torch.equal(fast, ref)
        default = generate(tiny, ids, mask, **{**kw, "redecode_earlier_masks": False},
                           generator=torch.Generator().manual_seed(1))
        leftovers += int((default[:, 6:18] == cfg.mask_token_id).sum())
    assert leftovers > 0  # the official variant had earlier-block [M] to revisit
