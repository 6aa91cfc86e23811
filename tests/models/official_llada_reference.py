"""Independent re-implementation of the OFFICIAL LLaDA remote code's forward pass (GSAI-ML/LLaDA-8B-Instruct,
`modeling_llada.py`: `RMSLayerNorm`, `RotaryEmbedding`, `LLaDALlamaBlock`, `LLaDAModel.forward`), written from
reading that code, for logit-parity tests of `spg_lib.models`. It shares no code with the package.

Faithful to the official code: a cached RoPE table built once for max_sequence_length (positions 0..L-1, no padding
awareness), "rotate half" through a (2, hd/2) view, q/k cast to float32 for RoPE when rope_full_precision, RMSNorm in
float32 then `weight * x`, GQA by repeat_interleave, attention without any mask (the official forward never passes
its padding bias to SDPA), `act(ff_proj(x)) * up_proj(x)`, and the untied `transformer.ff_out` head. Attention is
written out as softmax(q k^T / sqrt(hd)) v instead of calling SDPA, so the kernel is independent too.

It loads a checkpoint directory directly: config.json (plain JSON) + model.safetensors or the shards listed in
model.safetensors.index.json, with `load_state_dict(strict=True)` on the official module tree.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn


class RefRMSLayerNorm(nn.Module):
    def __init__(self, cfg: dict[str, Any], size: int) -> None:
        super().__init__()
        self.eps = cfg["rms_norm_eps"]
        self.weight = nn.Parameter(torch.ones(size))
        use_bias = cfg["bias_for_layer_norm"] if cfg["bias_for_layer_norm"] is not None else cfg["include_bias"]
        self.bias = nn.Parameter(torch.zeros(size)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        og_dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = (x * torch.rsqrt(variance + self.eps)).to(og_dtype)
        return self.weight * x + self.bias if self.bias is not None else self.weight * x


class RefRotary:
    """Official-style RoPE: one table for max_sequence_length, sliced to the key length."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        dim = cfg["d_model"] // cfg["n_heads"]
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        seq = torch.arange(cfg["max_sequence_length"], dtype=torch.float)
        freqs = torch.einsum("i , j -> i j", seq, inv_freq)
        positions = torch.cat((freqs, freqs), dim=-1)
        self.sin, self.cos = positions.sin()[None, None], positions.cos()[None, None]
        self.full_precision = cfg["rope_full_precision"]

    @staticmethod
    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        B, nh, T, hs = x.size()
        x1, x2 = x.view(B, nh, T, 2, hs // 2).unbind(dim=-2)
        return torch.cat((-x2, x1), dim=-1)

    def apply(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_, k_ = (q.float(), k.float()) if self.full_precision else (q, k)
        T = k_.shape[-2]
        sin, cos = self.sin[:, :, :T].type_as(q_), self.cos[:, :, :T].type_as(q_)
        q_ = (q_ * cos + self.rotate_half(q_) * sin).to(q_.dtype)
        k_ = (k_ * cos + self.rotate_half(k_) * sin).to(k_.dtype)
        return q_.type_as(q), k_.type_as(k)


class RefLlamaBlock(nn.Module):
    def __init__(self, cfg: dict[str, Any], rotary: RefRotary) -> None:
        super().__init__()
        d, nh = cfg["d_model"], cfg["n_heads"]
        n_kv = cfg["n_kv_heads"]  # official `effective_n_kv_heads`
        if n_kv is None:
            n_kv = 1 if cfg.get("multi_query_attention") else nh
        hidden = cfg["mlp_hidden_size"] if cfg["mlp_hidden_size"] is not None else cfg["mlp_ratio"] * d
        bias = cfg["include_bias"]
        qkv_bias = bias | bool(cfg["include_qkv_bias"])
        self.cfg, self.rotary, self.n_kv = cfg, rotary, n_kv
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_out = nn.Linear(hidden, d, bias=bias)
        self.attn_norm = RefRMSLayerNorm(cfg, d)
        self.ff_norm = RefRMSLayerNorm(cfg, d)
        self.q_proj = nn.Linear(d, d, bias=qkv_bias)
        self.k_proj = nn.Linear(d, n_kv * (d // nh), bias=qkv_bias)
        self.v_proj = nn.Linear(d, n_kv * (d // nh), bias=qkv_bias)
        self.ff_proj = nn.Linear(d, hidden, bias=bias)
        self.up_proj = nn.Linear(d, hidden, bias=bias)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, T, C = q.size()
        nh = self.cfg["n_heads"]
        q = q.view(B, T, nh, C // nh).transpose(1, 2)
        k = k.view(B, T, self.n_kv, C // nh).transpose(1, 2)
        v = v.view(B, T, self.n_kv, C // nh).transpose(1, 2)
        q, k = self.rotary.apply(q, k)
        if nh != self.n_kv:
            k = k.repeat_interleave(nh // self.n_kv, dim=1)
            v = v.repeat_interleave(nh // self.n_kv, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # no mask: bidirectional, padding ignored
        att = torch.softmax(scores, dim=-1) @ v
        return self.attn_out(att.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_normed = self.attn_norm(x)
        x = x + self.attention(self.q_proj(x_normed), self.k_proj(x_normed), self.v_proj(x_normed))
        og_x = x
        x = self.ff_norm(x)
        x, x_up = self.ff_proj(x), self.up_proj(x)
        x = F.silu(x) * x_up
        return og_x + self.ff_out(x)


class RefLLaDAModel(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        assert cfg["block_type"] == "llama" and cfg["rope"] and not cfg["alibi"] and cfg["activation_type"] == "silu"
        self.cfg = cfg
        rotary = RefRotary(cfg)
        n_emb = cfg["embedding_size"] or cfg["vocab_size"]
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(n_emb, cfg["d_model"]),
                ln_f=RefRMSLayerNorm(cfg, cfg["d_model"]),
                blocks=nn.ModuleList(RefLlamaBlock(cfg, rotary) for _ in range(cfg["n_layers"])),
            )
        )
        if not cfg["weight_tying"]:
            self.transformer["ff_out"] = nn.Linear(cfg["d_model"], n_emb, bias=cfg["include_bias"])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.transformer["wte"](input_ids)
        if self.cfg["input_emb_norm"]:
            x = x * (self.cfg["d_model"] ** 0.5)
        for block in self.transformer["blocks"]:
            x = block(x)
        x = self.transformer["ln_f"](x)
        if self.cfg["weight_tying"]:
            logits = F.linear(x, self.transformer["wte"].weight, None)
        else:
            logits = self.transformer["ff_out"](x)
        if self.cfg["scale_logits"]:
            logits = logits * (1 / math.sqrt(self.cfg["d_model"]))
        return logits


class RefLLaDAModelLM(nn.Module):
    """The official HF wrapper: the network lives under `.model`, hence the `model.transformer.*` names."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = RefLLaDAModel(cfg)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    @classmethod
    def from_directory(cls, directory: str | Path) -> RefLLaDAModelLM:
        directory = Path(directory)
        cfg = json.loads((directory / "config.json").read_text())
        index = directory / "model.safetensors.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            shards = ["model.safetensors"]
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(directory / shard)))
        model = cls(cfg)
        model.load_state_dict(state, strict=True)
        return model.eval()
