"""`LLaDAConfig`: the configuration of a LLaDA masked diffusion transformer, with the official field names.

The fields are exactly those of the published `config.json` of GSAI-ML/LLaDA-8B-Instruct (which are the fields of
the official remote code's `ModelConfig`, an OLMo descendant), so that file parses as is. Defaults are the
LLaDA-8B-Instruct values (not the remote code's GPT-2-like dataclass defaults); every field is written on save.

| field (official name)      | meaning                                       | 8B value / supported |
|----------------------------|-----------------------------------------------|----------------------|
| d_model                    | hidden size D                                 | 4096                 |
| n_heads                    | query heads H (head dim = d_model // n_heads) | 32                   |
| n_kv_heads                 | kv heads (null -> n_heads; fewer = GQA/MQA)   | 32                   |
| multi_query_attention      | legacy MQA switch (true -> 1 kv head)         | null                 |
| n_layers                   | transformer blocks                            | 32                   |
| mlp_hidden_size            | gated-MLP inner size F (null -> mlp_ratio*D)  | 12288                |
| activation_type            | activation on ff_proj (the gate)              | silu (gelu, relu)    |
| block_type                 | block layout                                  | llama only           |
| block_group_size           | FSDP grouping (renames parameters)            | 1 only               |
| layer_norm_type            | norm implementation                           | rms only             |
| layer_norm_with_affine     | norms have a weight                           | true                 |
| bias_for_layer_norm        | norms have a bias (null -> include_bias)      | false                |
| rms_norm_eps               | RMSNorm epsilon                               | 1e-5                 |
| rope, rope_theta           | rotary embeddings (required), base            | true, 500000.0       |
| rope_full_precision        | apply RoPE in float32                         | true                 |
| alibi                      | ALiBi biases                                  | false only           |
| attention_layer_norm       | QK-norm                                       | false only           |
| include_bias               | biases in every linear                        | false                |
| include_qkv_bias           | biases in q/k/v only                          | false                |
| scale_logits               | logits *= 1/sqrt(D)                           | false                |
| input_emb_norm             | embeddings *= sqrt(D)                         | false                |
| vocab_size                 | tokenizer size                                | 126464               |
| embedding_size             | rows of wte / head = logits width             | 126464               |
| weight_tying               | head shares wte                               | false                |
| mask_token_id              | mask id                                       | 126336               |
| eos_token_id, pad_token_id | EOS / padding ids                             | 126081, 126081       |
| max_sequence_length        | longest input (RoPE is unbounded)             | 4096                 |
| *_dropout                  | embedding / residual / attention              | 0.0                  |
| flash_attention, init_*    | stored, unused (SDPA, own init)               |                      |
| precision, use_cache       | stored, unused                                |                      |

Any other key (e.g. `auto_map`, `architectures`, `transformers_version`) is accepted; unknown keys are stored as
attributes, except `auto_map`, which is dropped: this class is native code, and a directory saved from it carries no
remote-code files for an `auto_map` to point to.

Test: `python -m pytest -q tests/models`.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

_SUPPORTED_ACTIVATIONS = ("silu", "gelu", "relu")


class LLaDAConfig(PretrainedConfig):
    """LLaDA model configuration (official `config.json` field names; see the module docstring for the table).

    Raises:
        ValueError: for values the native implementation does not support (block_type other than "llama",
            non-RMS norms, ALiBi, no RoPE, QK-norm, grouped blocks, "swiglu" activation in a llama block) or
            inconsistent sizes (d_model not divisible by n_heads, n_heads not divisible by n_kv_heads,
            embedding_size < vocab_size, special ids outside the embedding).
    """

    model_type = "llada"
    keys_to_ignore_at_inference = ["past_key_values"]  # noqa: RUF012  (HF class attribute)

    # --- architecture -------------------------------------------------------------------------------------------
    d_model: int = 4096
    n_heads: int = 32
    n_kv_heads: int | None = 32
    multi_query_attention: bool | None = None
    n_layers: int = 32
    mlp_ratio: int = 4
    mlp_hidden_size: int | None = 12288
    activation_type: str = "silu"
    block_type: str = "llama"
    block_group_size: int = 1
    layer_norm_type: str = "rms"
    layer_norm_with_affine: bool = True
    bias_for_layer_norm: bool | None = False
    rms_norm_eps: float = 1e-05
    attention_layer_norm: bool = False
    attention_layer_norm_with_affine: bool = True
    rope: bool = True
    rope_theta: float = 500000.0
    rope_full_precision: bool = True
    alibi: bool = False
    alibi_bias_max: float = 8.0
    include_bias: bool = False
    include_qkv_bias: bool | None = False
    scale_logits: bool = False
    input_emb_norm: bool = False
    flash_attention: bool = False
    # --- vocabulary and special tokens ----------------------------------------------------------------------------
    vocab_size: int = 126464
    embedding_size: int | None = 126464
    weight_tying: bool = False
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    max_sequence_length: int = 4096
    # --- regularisation, initialisation and bookkeeping (stored; only the dropouts and init_std are used) ----------
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0
    embedding_dropout: float = 0.0
    init_device: str | None = "meta"
    init_fn: str = "mitchell"
    init_std: float = 0.02
    init_cutoff_factor: float | None = None
    precision: str | None = "amp_bf16"
    use_cache: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        # `auto_map` would route trust_remote_code loads of our own saved dirs to files that are not there.
        kwargs.pop("auto_map", None)
        super().__post_init__(**kwargs)
        if self.architectures is None:
            self.architectures = ["LLaDAModelLM"]
        self._check_supported()

    # ---------------------------------------------------------------------------------------------------------------
    def _check_supported(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"LLaDAConfig.{field}={getattr(self, field)!r}: {why}")

        for name in ("d_model", "n_heads", "n_layers", "vocab_size", "max_sequence_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise bad(name, "must be a positive integer")
        if self.block_type != "llama":
            raise bad("block_type", 'only the "llama" block (separate q/k/v, ff_proj/up_proj) is supported')
        if self.layer_norm_type != "rms":
            raise bad("layer_norm_type", 'only "rms" (RMSNorm) is supported')
        if self.alibi:
            raise bad("alibi", "ALiBi is not supported (LLaDA uses RoPE)")
        if not self.rope:
            raise bad("rope", "RoPE is required (the official masked diffusion model asserts rope=True)")
        if self.attention_layer_norm:
            raise bad("attention_layer_norm", "QK layer norm is not supported")
        if self.block_group_size != 1:
            raise bad("block_group_size", "only 1 is supported (groups rename parameters to block_groups.*)")
        if self.activation_type not in _SUPPORTED_ACTIVATIONS:
            raise bad(
                "activation_type",
                f"the llama block computes act(ff_proj(x)) * up_proj(x); supported: {_SUPPORTED_ACTIVATIONS}",
            )
        if self.d_model % self.n_heads != 0:
            raise bad("d_model", f"must be divisible by n_heads={self.n_heads}")
        kv = self.effective_n_kv_heads
        if kv <= 0 or self.n_heads % kv != 0:
            raise bad("n_kv_heads", f"effective kv heads {kv} must divide n_heads={self.n_heads}")
        if self.mlp_hidden_size is not None and self.mlp_hidden_size <= 0:
            raise bad("mlp_hidden_size", "must be positive or null")
        if self.embedding_size is not None and self.embedding_size < self.vocab_size:
            raise bad("embedding_size", f"must be >= vocab_size={self.vocab_size}")
        for name in ("mask_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < self.padded_vocab_size:
                raise bad(name, f"must be an int in [0, {self.padded_vocab_size})")
        for name in ("attention_dropout", "residual_dropout", "embedding_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise bad(name, "must be in [0, 1)")
        if self.rms_norm_eps <= 0 or self.rope_theta <= 0:
            raise ValueError(f"LLaDAConfig: rms_norm_eps ({self.rms_norm_eps}) and rope_theta ({self.rope_theta}) "
                             "must be positive")

    # --- derived sizes (same rules as the official remote code) ----------------------------------------------------
    @property
    def effective_n_kv_heads(self) -> int:
        """Key/value heads: n_kv_heads, or 1 / n_heads from the legacy `multi_query_attention` switch."""
        if self.n_kv_heads is None:
            return 1 if self.multi_query_attention else self.n_heads
        if self.multi_query_attention is not None:
            expected = 1 if self.multi_query_attention else self.n_heads
            if self.n_kv_heads != expected:
                raise ValueError(
                    f"LLaDAConfig: multi_query_attention={self.multi_query_attention} contradicts "
                    f"n_kv_heads={self.n_kv_heads}; set only one of them"
                )
        return self.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        """Inner size of the llama MLP (ff_proj, up_proj: D -> this; ff_out: this -> D)."""
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        """Rows of `wte` and of the output head (= logits width): embedding_size, else vocab_size."""
        return self.embedding_size or self.vocab_size

    @property
    def norm_bias(self) -> bool:
        return self.include_bias if self.bias_for_layer_norm is None else bool(self.bias_for_layer_norm)

    # HF-standard aliases (read-only), as in the official config class.
    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers
