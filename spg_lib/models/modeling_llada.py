"""Native LLaDA masked diffusion transformer (bidirectional Llama-style encoder), loadable without remote code.

Numerics follow the official remote code of GSAI-ML/LLaDA-8B-Instruct (`modeling_llada.py`, `LLaDALlamaBlock`):
  - pre-norm block: x += attn_out(attn(attn_norm(x)));  x += ff_out(act(ff_proj(h)) * up_proj(h)), h = ff_norm(x)
    (the activation, SiLU for LLaDA-8B, goes on `ff_proj`, the gate; `up_proj` is the linear branch);
  - RMSNorm: normalise in float32 (autocast off), cast back to the input dtype, then `weight * x (+ bias)`;
  - RoPE on q and k after splitting heads, "rotate half" layout (dims [0, hd/2) pair with [hd/2, hd)),
    inv_freq = 1 / theta^(arange(0, hd, 2) / hd), sin/cos of cat(freqs, freqs), in float32 when rope_full_precision;
  - attention: softmax(q k^T / sqrt(hd)) v with NO causal mask; GQA repeats each kv head n_heads/n_kv_heads times
    (repeat_interleave order); head dim hd = d_model // n_heads;
  - logits = ln_f(x) @ W^T with W = transformer.ff_out.weight (or wte.weight when weight_tying), no slicing to
    vocab_size (width = embedding_size), times 1/sqrt(d_model) only when scale_logits.
Differences from the official code, both deliberate: the official forward ignores `attention_mask` (its padding
bias never reaches SDPA); here padded keys are masked out and RoPE positions count from each row's first real token,
so a left-padded row gives the same real-token logits as the unpadded row. Without padding the two agree to
float rounding (tests/models/test_parity.py).

Parameter names (the official state dict; `N` = block index):
  | official name                                   | module here                       | shape           |
  |-------------------------------------------------|-----------------------------------|-----------------|
  | model.transformer.wte.weight                    | LLaDAModel.transformer["wte"]     | [E, D]          |
  | model.transformer.blocks.N.attn_norm.weight     | LLaDABlock.attn_norm (RMSNorm)    | [D]             |
  | model.transformer.blocks.N.q_proj.weight        | LLaDABlock.q_proj                 | [D, D]          |
  | model.transformer.blocks.N.k_proj.weight        | LLaDABlock.k_proj                 | [Hkv*hd, D]     |
  | model.transformer.blocks.N.v_proj.weight        | LLaDABlock.v_proj                 | [Hkv*hd, D]     |
  | model.transformer.blocks.N.attn_out.weight      | LLaDABlock.attn_out               | [D, D]          |
  | model.transformer.blocks.N.ff_norm.weight       | LLaDABlock.ff_norm (RMSNorm)      | [D]             |
  | model.transformer.blocks.N.ff_proj.weight       | LLaDABlock.ff_proj (gate, act)    | [F, D]          |
  | model.transformer.blocks.N.up_proj.weight       | LLaDABlock.up_proj (linear)       | [F, D]          |
  | model.transformer.blocks.N.ff_out.weight        | LLaDABlock.ff_out                 | [D, F]          |
  | model.transformer.ln_f.weight                   | LLaDAModel.transformer["ln_f"]    | [D]             |
  | model.transformer.ff_out.weight (if untied)     | LLaDAModel.transformer["ff_out"]  | [E, D]          |
  (`.bias` entries exist as in the official code when include_bias / include_qkv_bias / bias_for_layer_norm.)
Dimensions: B batch, T sequence, D d_model, H heads, Hkv kv heads, hd head dim, F mlp hidden, E embedding_size (= V,
the logits width).

Test: `python -m pytest -q tests/models`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from spg_lib.models.configuration_llada import LLaDAConfig

__all__ = [
    "KVCache", "LLaDABlock", "LLaDAModel", "LLaDAModelLM", "RMSNorm", "apply_rope", "init_weights_", "rope_sin_cos",
]

# kwargs that HF-style callers pass and that carry no information for this (cache-free, single-output) model.
_IGNORED_FORWARD_KWARGS = ("use_cache", "return_dict", "output_attentions", "output_hidden_states")


# ------------------------------------------------------------------------------------------------ building blocks
class RMSNorm(nn.Module):
    """RMSNorm as in the official code: float32 normalisation, cast back, then the affine transform."""

    def __init__(self, size: int, eps: float, affine: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size)) if affine else None
        self.bias = nn.Parameter(torch.zeros(size)) if (affine and bias) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.float()
            xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
            x = xf.to(x.dtype)
        if self.weight is not None:
            x = self.weight * x
            if self.bias is not None:
                x = x + self.bias
        return x


def rope_sin_cos(
    position_ids: torch.Tensor, head_dim: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables in float32.

    Args:
        position_ids: LongTensor [B, T] (or [T]) of token positions.
        head_dim: hd (even).
        theta: RoPE base.
    Returns:
        (sin, cos), each float32 [B, 1, T, hd] (the two halves of the last dim repeat the same frequencies).
    """
    if position_ids.dim() == 1:
        position_ids = position_ids[None]
    device = position_ids.device
    with torch.autocast(device_type=device.type, enabled=False):
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float) / head_dim))
        freqs = position_ids.float()[..., None] * inv_freq  # [B, T, hd/2]
        angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # [B, 1, T, hd]
        return angles.sin(), angles.cos()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:  # [..., hd] -> [..., hd]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor, full_precision: bool = True) -> torch.Tensor:
    """Rotate x [B, h, T, hd] by the tables [B or 1, 1, T, hd]; float32 math when full_precision; returns x.dtype."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        xr = x.float() if full_precision else x
        sin, cos = sin.to(xr.dtype), cos.to(xr.dtype)
        return (xr * cos + _rotate_half(xr) * sin).to(x.dtype)


_ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}


class LLaDABlock(GradientCheckpointingLayer):
    """One `LLaDALlamaBlock`: bidirectional multi-head (or grouped-query) attention + gated MLP, pre-norm."""

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        D, hd, kv, F_ = config.d_model, config.head_dim, config.effective_n_kv_heads, config.mlp_hidden
        bias, qkv_bias = bool(config.include_bias), bool(config.include_bias or config.include_qkv_bias)
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, kv, hd
        self.rope_full_precision = bool(config.rope_full_precision)
        self.attention_dropout = float(config.attention_dropout)
        self.residual_dropout = float(config.residual_dropout)
        self.act = _ACTIVATIONS[config.activation_type]

        norm = dict(eps=config.rms_norm_eps, affine=config.layer_norm_with_affine, bias=config.norm_bias)
        self.attn_norm = RMSNorm(D, **norm)
        self.q_proj = nn.Linear(D, D, bias=qkv_bias)
        self.k_proj = nn.Linear(D, kv * hd, bias=qkv_bias)
        self.v_proj = nn.Linear(D, kv * hd, bias=qkv_bias)
        self.attn_out = nn.Linear(D, D, bias=bias)
        self.ff_norm = RMSNorm(D, **norm)
        self.ff_proj = nn.Linear(D, F_, bias=bias)  # gate branch: the activation is applied to this one
        self.up_proj = nn.Linear(D, F_, bias=bias)
        self.ff_out = nn.Linear(F_, D, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        sin: torch.Tensor,
        cos: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        query_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """x [B, T, D], rope tables [B|1, 1, T, hd], key_mask bool [B, 1, 1, T] (True = attend) -> [B, T, D].

        query_range (s, e): keys/values still come from all T positions, but only positions s..e-1 are queried
        and returned ([B, e - s, D]); their values equal rows s..e-1 of the full output (up to float rounding).
        Used for the last block when only some positions' hidden states are needed.
        """
        return self.forward_kv(x, sin, cos, key_mask, query_range)[0]

    def forward_kv(
        self,
        x: torch.Tensor,
        sin: torch.Tensor,
        cos: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        query_range: tuple[int, int] | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_start: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` that also returns the keys (RoPE applied) and values it attended to, [B, Hkv, T_k, hd].

        kv (keys, values) [B, Hkv, T_k, hd]: a cache of the whole canvas; x [B, T, D] then holds only canvas
        positions kv_start..kv_start+T-1, whose fresh keys/values are written into the cache (in place) before
        the queries of x attend to all T_k cached positions (key_mask [B, 1, 1, T_k]).
        """
        B, T, D = x.shape
        h = self.attn_norm(x)
        k = self.k_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        v = self.v_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        k = apply_rope(k, sin, cos, self.rope_full_precision)
        if kv is not None:
            cache_k, cache_v = kv  # [B, Hkv, T_k, hd]
            cache_k[:, :, kv_start : kv_start + T] = k
            cache_v[:, :, kv_start : kv_start + T] = v
            k, v = cache_k, cache_v
        if query_range is not None:
            s, e = query_range
            x, h = x[:, s:e], h[:, s:e]  # [B, Q, D]
            sin, cos = sin[:, :, s:e], cos[:, :, s:e]
        Q = x.shape[1]
        q = self.q_proj(h).view(B, Q, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, Q, hd]
        q = apply_rope(q, sin, cos, self.rope_full_precision)
        att = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=False,  # masked diffusion: every position sees every (real) position
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # [B, H, Q, hd]
        att = att.transpose(1, 2).reshape(B, Q, D)
        x = x + F.dropout(self.attn_out(att), self.residual_dropout, self.training)

        h = self.ff_norm(x)
        h = self.act(self.ff_proj(h)) * self.up_proj(h)  # [B, Q, F]
        return x + F.dropout(self.ff_out(h), self.residual_dropout, self.training), k, v


@dataclasses.dataclass
class KVCache:
    """Keys (RoPE applied) and values of every layer for a whole canvas [B, T], from :meth:`LLaDAModel.encode_kv`.

    keys/values: one [B, Hkv, T, hd] tensor per layer; sin/cos: the rotary tables [B|1, 1, T, hd] of the canvas
    positions; key_mask: [B, 1, 1, T] bool (True = attend) or None when no key is padding; batch_size: B.
    A cached forward of a slice overwrites the slice's keys/values in place (its fresh ones), the rest is reused as is.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    sin: torch.Tensor
    cos: torch.Tensor
    key_mask: torch.Tensor | None
    batch_size: int

    @property
    def length(self) -> int:
        return int(self.sin.shape[2])


# ------------------------------------------------------------------------------------------------ the network
class LLaDAModel(nn.Module):
    """Embedding, blocks, final norm and output head, stored under `transformer.*` exactly as the official code."""

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.config = config
        E, D = config.padded_vocab_size, config.d_model
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(E, D),
                blocks=nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
                ln_f=RMSNorm(D, config.rms_norm_eps, config.layer_norm_with_affine, config.norm_bias),
            )
        )
        if not config.weight_tying:
            self.transformer["ff_out"] = nn.Linear(D, E, bias=config.include_bias)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Token ids [B, T] -> final-norm hidden states [B, T, D] (or [B, e - s, D] with output_range=(s, e)).

        attention_mask [B, T] (1 real, 0 padding): padded keys are masked out and, unless position_ids are given,
        positions count real tokens from each row's first real token (so left padding does not shift RoPE).
        output_range (s, e): only positions s..e-1 are returned; the last block then runs its queries, attention
        output and MLP on those positions only (every earlier block still needs all T positions as keys/values).
        """
        x, sin, cos, key_mask, output_range = self._inputs(input_ids, attention_mask, position_ids, output_range)
        blocks = self.transformer["blocks"]
        for i, block in enumerate(blocks):
            if output_range is not None and i == len(blocks) - 1:
                x = block(x, sin, cos, key_mask, output_range)  # [B, e - s, D]
            else:
                x = block(x, sin, cos, key_mask)  # [B, T, D]
        if output_range is not None and len(blocks) == 0:
            x = x[:, output_range[0] : output_range[1]]
        return self.transformer["ln_f"](x)

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, D]
        x = self.transformer["wte"](input_ids)
        if self.config.input_emb_norm:
            x = x * (self.config.d_model**0.5)
        return F.dropout(x, float(self.config.embedding_dropout), self.training)

    def _inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        output_range: tuple[int, int] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[int, int] | None]:
        """Embeddings [B, T, D], rope tables, key mask [B, 1, 1, T] | None and the checked output_range."""
        cfg = self.config
        B, T = input_ids.shape
        if output_range is not None:
            output_range = (int(output_range[0]), int(output_range[1]))
            if not 0 <= output_range[0] < output_range[1] <= T:
                raise ValueError(f"output_range={output_range} must satisfy 0 <= start < end <= T={T}")
        x = self._embed(input_ids)  # [B, T, D]

        key_mask = None
        if attention_mask is not None:
            if attention_mask.shape != (B, T):
                raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {(B, T)}")
            real = attention_mask.to(torch.bool)  # [B, T]
            if position_ids is None:
                position_ids = (real.long().cumsum(-1) - 1).clamp(min=0)  # [B, T]
            # (under torch.compile the mask is always applied: a data-dependent branch would break the graph)
            if torch.compiler.is_compiling() or not bool(real.all()):
                # A row with no real token at all would give a fully masked softmax (NaN); let it see everything.
                real = real | ~real.any(-1, keepdim=True)
                key_mask = real[:, None, None, :]  # [B, 1, 1, T]
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device)[None]  # [1, T]
        sin, cos = rope_sin_cos(position_ids, cfg.head_dim, cfg.rope_theta)  # [B|1, 1, T, hd]
        return x, sin, cos, key_mask, output_range

    def encode_kv(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_range: tuple[int, int] | None = None,
        row_chunk: int | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """:meth:`encode` (same arguments, same values) that also returns every layer's keys/values (a KVCache).

        row_chunk: run at most this many rows per pass, each pass writing its rows into one cache allocated after
        the first (rows are independent: the same values up to float rounding; the activations held at once are
        those of row_chunk rows instead of B, the cache itself is the same).
        """
        if row_chunk is not None and 0 < row_chunk < input_ids.shape[0]:
            return self._encode_kv_by_rows(input_ids, attention_mask, position_ids, output_range, row_chunk)
        x, sin, cos, key_mask, output_range = self._inputs(input_ids, attention_mask, position_ids, output_range)
        keys, values = [], []
        blocks = self.transformer["blocks"]
        for i, block in enumerate(blocks):
            last = output_range is not None and i == len(blocks) - 1
            x, k, v = block.forward_kv(x, sin, cos, key_mask, output_range if last else None)
            keys.append(k)
            values.append(v)
        if output_range is not None and len(blocks) == 0:
            x = x[:, output_range[0] : output_range[1]]
        cache = KVCache(keys=keys, values=values, sin=sin, cos=cos, key_mask=key_mask, batch_size=input_ids.shape[0])
        return self.transformer["ln_f"](x), cache

    def _encode_kv_by_rows(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        output_range: tuple[int, int] | None,
        row_chunk: int,
    ) -> tuple[torch.Tensor, KVCache]:
        """:meth:`encode_kv` over rows [r, r + row_chunk) at a time, into one preallocated cache."""
        B = input_ids.shape[0]
        hidden: list[torch.Tensor] = []
        cache: KVCache | None = None
        masked = False  # whether any pass had a key mask (else the cache keeps None, as one pass would)
        for r0 in range(0, B, row_chunk):
            rows = slice(r0, min(B, r0 + row_chunk))
            am = None if attention_mask is None else attention_mask[rows]
            pos = position_ids if position_ids is None or position_ids.shape[0] == 1 else position_ids[rows]
            h, part = self.encode_kv(input_ids[rows], am, pos, output_range)
            if cache is None:
                def full(t: torch.Tensor) -> torch.Tensor:  # [g, ...] -> an empty [B, ...] like it
                    return t.new_empty((B, *t.shape[1:]))

                per_row = part.sin.shape[0] != 1
                cache = KVCache(
                    keys=[full(k) for k in part.keys], values=[full(v) for v in part.values],
                    sin=full(part.sin) if per_row else part.sin, cos=full(part.cos) if per_row else part.cos,
                    key_mask=None if attention_mask is None else torch.ones(
                        (B, 1, 1, part.length), dtype=torch.bool, device=input_ids.device),
                    batch_size=B)
            for dst, src in zip(cache.keys + cache.values, part.keys + part.values, strict=True):
                dst[rows] = src
            if cache.sin.shape[0] != 1:
                cache.sin[rows], cache.cos[rows] = part.sin, part.cos
            if part.key_mask is not None:
                cache.key_mask[rows] = part.key_mask
                masked = True
            hidden.append(h)
            del part
        assert cache is not None  # B > row_chunk >= 1: at least one pass ran
        if not masked:
            cache.key_mask = None
        return torch.cat(hidden, dim=0), cache

    def encode_cached(
        self,
        input_ids: torch.Tensor,
        cache: KVCache,
        slice_range: tuple[int, int],
        output_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Hidden states of canvas positions [s, e) only, attending to ``cache`` for every other position.

        input_ids [B, e - s]: the current tokens of positions s..e-1 of the canvas the cache was built on (same
        rows, same padding). At every layer their fresh keys/values replace the cached ones at s..e-1 (in place)
        and their queries attend to all T cached positions (bidirectional, the cache's key mask, RoPE at absolute
        canvas positions). Equals rows s..e-1 of :meth:`encode` when the cache holds what a full forward of the
        current canvas computes (up to float rounding); otherwise the other positions' keys/values are stale, the
        approximation of a block cache. output_range (a, b), s <= a < b <= e (canvas positions): only those are
        returned ([B, b - a, D]) and the last layer queries only them.
        """
        s, e = int(slice_range[0]), int(slice_range[1])
        B, T = cache.batch_size, cache.length
        if not 0 <= s < e <= T:
            raise ValueError(f"slice_range={slice_range} must satisfy 0 <= start < end <= T={T}")
        if input_ids.dim() != 2 or tuple(input_ids.shape) != (B, e - s):
            raise ValueError(f"input_ids shape {tuple(input_ids.shape)} must be [B, e - s] = [{B}, {e - s}] for "
                             f"slice_range={slice_range} and the cache's batch")
        query = None
        if output_range is not None:
            a, b = int(output_range[0]), int(output_range[1])
            if not s <= a < b <= e:
                raise ValueError(f"output_range={output_range} must lie inside slice_range={slice_range}")
            query = (a - s, b - s)
        x = self._embed(input_ids)  # [B, e - s, D]
        sin, cos = cache.sin[:, :, s:e], cache.cos[:, :, s:e]
        blocks = self.transformer["blocks"]
        for i, block in enumerate(blocks):
            last = query is not None and i == len(blocks) - 1
            kv = (cache.keys[i], cache.values[i])
            x = block.forward_kv(x, sin, cos, cache.key_mask, query if last else None, kv=kv, kv_start=s)[0]
        if query is not None and len(blocks) == 0:
            x = x[:, query[0] : query[1]]
        return self.transformer["ln_f"](x)

    def logits(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Final-norm hidden states [B, T, D] -> logits [B, T, E].

        out: optional preallocated tensor for the logits of 2-D hidden states [N, D] (an [N, E] tensor of the
        hidden dtype, e.g. a reused buffer; same values as without it). Ignored (a new tensor is returned) unless
        the head is a plain nn.Linear or the tied embedding (a wrapped/quantised head runs its own forward).
        """
        head = getattr(self.transformer, "ff_out", None)  # None: weight tying
        if out is not None and hidden.dim() == 2 and (head is None or type(head) is nn.Linear):
            weight = self.transformer["wte"].weight if head is None else head.weight  # [E, D]
            bias = None if head is None else head.bias
            if bias is None:
                logits = torch.matmul(hidden, weight.t(), out=out)  # what F.linear runs for 2-D inputs
            else:
                logits = torch.addmm(bias, hidden, weight.t(), out=out)
            if self.config.scale_logits:
                logits.mul_(1.0 / math.sqrt(self.config.d_model))
            return logits
        if "ff_out" in self.transformer:
            logits = self.transformer["ff_out"](hidden)
        else:  # weight tying: the embedding matrix is the output projection
            logits = F.linear(hidden, self.transformer["wte"].weight)
        if self.config.scale_logits:
            logits = logits * (1.0 / math.sqrt(self.config.d_model))
        return logits


@torch.no_grad()
def init_weights_(model: nn.Module, std: float, n_layers: int, generator: torch.Generator | None = None) -> None:
    """Normal(0, std) init for embeddings/linears, std/sqrt(2 n_layers) for residual outputs (attn_out, block
    ff_out), ones/zeros for norms and biases; parameters are visited in `named_modules` order, so a fixed generator
    seed gives a fixed model."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            residual = name.endswith(("attn_out", "ff_out")) and ".blocks." in f".{name}"
            s = std / math.sqrt(2 * n_layers) if residual else std
            module.weight.normal_(0.0, s, generator=generator)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, RMSNorm):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()


# ------------------------------------------------------------------------------------------------ HF wrapper
class LLaDAModelLM(PreTrainedModel):
    """LLaDA masked diffusion LM with the official parameter layout (`model.transformer.*`).

    `forward(input_ids, attention_mask=None, logits_range=None).logits` is [B, T, V] (or [B, end-start, V]).
    """

    config_class = LLaDAConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDABlock"]  # noqa: RUF012
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    # --- HF hooks -------------------------------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        # Only runs for weights missing from a checkpoint (hf_init skips tensors flagged as loaded).
        std = float(self.config.init_std)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            hf_init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                hf_init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            if module.weight is not None:
                hf_init.ones_(module.weight)
            if module.bias is not None:
                hf_init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.transformer["wte"]

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.transformer["wte"] = value

    def get_output_embeddings(self) -> nn.Linear:
        """The output head as an nn.Linear with weight [V, D] (logits = hidden @ weight.T).

        With weight_tying the returned Linear is a fresh view whose weight IS the embedding Parameter.
        (logits == hidden_states @ weight.T exactly when include_bias and scale_logits are off, as for LLaDA-8B.)
        """
        if "ff_out" in self.model.transformer:
            return self.model.transformer["ff_out"]
        wte = self.model.transformer["wte"]
        head = nn.Linear(wte.weight.shape[1], wte.weight.shape[0], bias=False, device="meta")
        head.weight = wte.weight
        return head

    def set_output_embeddings(self, value: nn.Module) -> None:
        if self.config.weight_tying:
            raise ValueError("set_output_embeddings: the head is the input embedding when weight_tying=True")
        self.model.transformer["ff_out"] = value

    # --- public API -----------------------------------------------------------------------------------------------
    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Token ids [B, T] -> hidden states after the final norm, [B, T, D].

        output_range=(s, e): only positions s..e-1, [B, e - s, D], computed with a cheaper last block (see
        :meth:`LLaDAModel.encode`); equal to slicing the full result up to float rounding.
        """
        return self.model.encode(input_ids, attention_mask, position_ids, output_range)

    def hidden_states_kv(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_range: tuple[int, int] | None = None,
        row_chunk: int | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """:meth:`hidden_states` plus every layer's keys/values of all T positions (KV-cache capability);
        row_chunk: at most that many rows per pass into one cache (:meth:`LLaDAModel.encode_kv`)."""
        return self.model.encode_kv(input_ids, attention_mask, position_ids, output_range, row_chunk)

    def hidden_states_cached(
        self,
        input_ids: torch.Tensor,
        kv_cache: KVCache,
        slice_range: tuple[int, int],
        output_range: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Hidden states of canvas positions slice_range = [s, e) from their ids [B, e - s] and a KVCache of the
        other positions (:meth:`LLaDAModel.encode_cached`); output_range: a sub-range of canvas positions."""
        return self.model.encode_cached(input_ids, kv_cache, slice_range, output_range)

    def logits_from_hidden(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Output head on final-norm hidden states [..., D] -> logits [..., V] (what forward applies).

        out: optional [N, V] buffer for 2-D hidden states [N, D] (see :meth:`LLaDAModel.logits`).
        """
        return self.model.logits(hidden, out=out)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        logits_range: tuple[int, int] | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        """Logits of the masked diffusion LM.

        Args:
            input_ids: LongTensor [B, T].
            attention_mask: [B, T], 1 for real tokens, 0 for (left) padding; None = all real.
            logits_range: (start, end) with 0 <= start < end <= T: run the output head only on those positions.
            position_ids: optional LongTensor [B, T] overriding the RoPE positions.
        Returns:
            MaskedLMOutput with logits [B, T, V] or [B, end - start, V] (V = embedding_size).
        Raises:
            ValueError: bad logits_range or attention_mask shape; TypeError: unsupported keyword arguments.
        """
        for key, value in kwargs.items():
            if key not in _IGNORED_FORWARD_KWARGS or (key.startswith("output_") and value):
                raise TypeError(f"LLaDAModelLM.forward got an unsupported argument {key}={value!r}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
        hidden = self.model.encode(input_ids, attention_mask, position_ids)  # [B, T, D]
        if logits_range is not None:
            start, end = (int(v) for v in logits_range)
            if not 0 <= start < end <= hidden.shape[1]:
                raise ValueError(f"logits_range={logits_range} must satisfy 0 <= start < end <= T={hidden.shape[1]}")
            hidden = hidden[:, start:end]
        return MaskedLMOutput(logits=self.model.logits(hidden))


# Native registration: AutoConfig/AutoModel resolve model_type "llada" to these classes without trust_remote_code
# (a registered local class also wins over a config's `auto_map`).
AutoConfig.register(LLaDAConfig.model_type, LLaDAConfig, exist_ok=True)
AutoModel.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
AutoModelForMaskedLM.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
