"""A tiny LLaDA (~1.6 M parameters) and a character-level tokenizer with LLaDA's special tokens, for tests and CPU
smoke runs.

The tokenizer covers printable ASCII plus newline (enough for GSM8K / MATH / Countdown / Sudoku text); any other
character becomes `<unk>`. Special tokens mirror LLaDA-8B-Instruct's: `<|mdm_mask|>` (mask), `<|eot_id|>` (eos),
`<|endoftext|>` (pad), the Llama-3 header tokens and `<|begin_of_text|>` (bos). Its chat template renders
`<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n{content}<|eot_id|>` per message and, with
`add_generation_prompt=True`, `<|start_header_id|>assistant<|end_header_id|>\\n\\n`.

Test: `python -m pytest -q tests/models/test_tiny.py`.
"""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from spg_lib.models.configuration_llada import LLaDAConfig
from spg_lib.models.modeling_llada import LLaDAModelLM, init_weights_

UNK, BOS, PAD, START_HEADER, END_HEADER, EOS, MASK = (
    "<unk>", "<|begin_of_text|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|mdm_mask|>",
)
SPECIAL_TOKENS: tuple[str, ...] = (UNK, BOS, PAD, START_HEADER, END_HEADER, EOS, MASK)  # ids 0..6, in this order
CHARACTERS: tuple[str, ...] = ("\n", *(chr(c) for c in range(32, 127)))  # newline + the 95 printable ASCII chars
TINY_VOCAB: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
TINY_VOCAB_SIZE = len(TINY_VOCAB)  # 103
assert set(string.printable) - set("\t\r\x0b\x0c") <= set(CHARACTERS)

# Llama-3 / LLaDA-8B-Instruct style template (content is stripped like LLaDA's `| trim`).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level fast tokenizer (103 tokens) with LLaDA's special tokens and chat template.

    Returns:
        PreTrainedTokenizerFast with mask/eos/pad/bos/unk tokens set, left padding, and `chat_template`.
        Decoding joins characters without separators, so `decode(encode(text)) == text` for covered text.
    """
    # A BPE model with no merges splits any text into single characters and maps unknown ones to <unk>.
    tok = Tokenizer(models.BPE(vocab=dict(TINY_VOCAB), merges=[], unk_token=UNK, fuse_unk=False))
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        mask_token=MASK,
        padding_side="left",
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def tiny_config(vocab_size: int | None = None) -> LLaDAConfig:
    """A ~1.6 M-parameter LLaDA config (6 blocks, d_model 128, 4 heads, SwiGLU 512) over the tiny vocabulary.

    Args:
        vocab_size: vocabulary size (>= 7 so the special ids exist); default: the tiny tokenizer's 103.
    Raises:
        ValueError: vocab_size too small for the special-token ids.
    """
    V = TINY_VOCAB_SIZE if vocab_size is None else int(vocab_size)
    if V < len(SPECIAL_TOKENS):
        raise ValueError(f"tiny_config: vocab_size={V} must be >= {len(SPECIAL_TOKENS)} (the special-token ids)")
    return LLaDAConfig(
        d_model=128, n_heads=4, n_kv_heads=4, n_layers=6, mlp_hidden_size=512, mlp_ratio=4,
        vocab_size=V, embedding_size=V, max_sequence_length=4096, rope_theta=10000.0,
        mask_token_id=TINY_VOCAB[MASK], eos_token_id=TINY_VOCAB[EOS], pad_token_id=TINY_VOCAB[PAD],
        init_device="cpu", init_fn="normal", precision=None,
    )


def init_tiny_model(vocab_size: int | None = None, seed: int = 0) -> LLaDAModelLM:
    """A freshly initialised tiny LLaDA (float32, CPU, eval mode), deterministic in `seed` (own torch.Generator)."""
    config = tiny_config(vocab_size)
    with torch.device("meta"):  # build without running torch's default (global-RNG) initialisers
        model = LLaDAModelLM(config)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(int(seed))
    init_weights_(model, std=config.init_std, n_layers=config.n_layers, generator=generator)
    return model.eval()
