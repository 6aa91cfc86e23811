"""Decoding: the LLaDA block sampler with low-confidence remasking, its plain reference, completion masks.

    from spg_lib.decoding import generate, generate_reference, num_transfer_tokens, completion_mask

    out = generate(model, prompt_ids, attention_mask, gen_length=256, block_length=32, steps=128,
                   mask_id=model.config.mask_token_id, temperature=0.0, generator=torch.Generator().manual_seed(0))
    completion = out[:, prompt_ids.shape[1]:]
    mask = completion_mask(completion, eos_id=model.config.eos_token_id)

docs/decoding.md#algorithm. Tests: ``pytest tests/decoding``. Benchmark: ``spg bench decode``.
"""

from spg_lib.decoding._common import GUMBEL_DTYPES, REMASKING_MODES, GumbelDtype, Remasking
from spg_lib.decoding.cached import (
    CACHE_MODES,
    UNMASKING_MODES,
    CacheMode,
    Unmasking,
    check_engine_config,
    generate_cached,
)
from spg_lib.decoding.completion import completion_lengths, completion_mask
from spg_lib.decoding.reference import generate_reference
from spg_lib.decoding.sampler import generate, top_k_per_row
from spg_lib.decoding.schedule import num_transfer_tokens

__all__ = [
    "CACHE_MODES",
    "GUMBEL_DTYPES",
    "REMASKING_MODES",
    "UNMASKING_MODES",
    "CacheMode",
    "GumbelDtype",
    "Remasking",
    "Unmasking",
    "check_engine_config",
    "completion_lengths",
    "completion_mask",
    "generate",
    "generate_cached",
    "generate_reference",
    "num_transfer_tokens",
    "top_k_per_row",
]
