"""`keep_mode`: both samplers decode in eval mode by default, in the caller's mode with keep_mode=True (the official
trainers' train-mode rollouts), and restore every module's flag afterwards."""

from __future__ import annotations

import pytest
import torch

from spg_lib.decoding import generate, generate_reference
from spg_lib.models import init_tiny_model


@pytest.mark.parametrize("sampler", [generate, generate_reference])
@pytest.mark.parametrize("keep_mode", [False, True])
def test_mode_during_and_after_decoding(sampler, keep_mode) -> None:
    model = init_tiny_model()
    model.train()
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ids = torch.tensor([[5, 6, 7]])
    sampler(model, ids, gen_length=4, block_length=4, steps=2, mask_id=model.config.mask_token_id,
            keep_mode=keep_mode)
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {keep_mode}
    assert all(m.training for m in model.modules())  # restored: the caller's train mode
