"""The MLflow pyfunc wrapper of a registered SPG model: load (full weights or LoRA adapter + base) and generate.

A registered model directory (what `mlflow.artifacts.download_artifacts("models:/NAME/VERSION")` gives) holds:

    MLmodel, python_model.pkl, requirements.txt, ...   MLflow's files
    artifacts/model/        the Hugging Face checkpoint (config.json, safetensors, tokenizer, spg_run.json)
                            -- or artifacts/adapter/ for a LoRA adapter (base model reference in MLmodel's
                            model_config "base_model" and in the version tag "model.base")
    artifacts/generation_config.json   {"gen_length", "steps", "block_length", "temperature", "remasking"}
    artifacts/README.md     the model card (evaluation table, protocol, lineage)

`mlflow.pyfunc.load_model(uri).predict(["prompt", ...])` returns one completion string per prompt (chat template
applied when the tokenizer has one; `params` may override gen_length / steps / block_length / temperature).
`.unwrap_python_model().model` / `.tokenizer` are the loaded `LLaDAModelLM` and tokenizer.
Loading needs `spg_lib` importable (the wrapper class is pickled by reference, not bundled).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd  # the type hint MLflow reads (a DataFrame after schema enforcement)

from spg_lib.io import read_json

GENERATION_KEYS = ("gen_length", "steps", "block_length", "temperature", "remasking")


def resolve_base_model(ref: str, cache_dir: str | Path | None = None) -> str:
    """A local directory (or "builtin:tiny" / hub id, passed through) for a base-model reference.

    ``models:/...`` and ``runs:/...`` URIs are downloaded; when the download is an SPG registered model, its
    ``artifacts/model`` checkpoint directory is returned."""
    if not ref.startswith(("models:/", "runs:/", "mlflow-artifacts:/", "s3://")):
        return ref
    import mlflow.artifacts

    dst = Path(cache_dir or tempfile.mkdtemp(prefix="spg-base-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(dst)))
    nested = local / "artifacts" / "model"
    return str(nested if (nested / "config.json").is_file() else local)


def load_checkpoint(artifacts: dict[str, str], model_config: dict[str, Any] | None, device: str | None = None,
                    dtype: str | None = None):
    """(model, tokenizer) from pyfunc artifacts: ``model`` (full checkpoint) or ``adapter`` + base reference."""
    from spg_lib.models import load_model, load_tokenizer

    cfg = model_config or {}
    if "model" in artifacts:
        return (load_model(artifacts["model"], dtype=dtype, device=device), load_tokenizer(artifacts["model"]))
    from peft import PeftModel

    base_ref = cfg.get("base_model")
    if not base_ref:
        raise ValueError("LoRA adapter model without a base_model reference in its model_config")
    base_dir = resolve_base_model(str(base_ref))
    base = load_model(base_dir, dtype=dtype)
    model = PeftModel.from_pretrained(base, artifacts["adapter"]).merge_and_unload()
    if device is not None:
        model = model.to(device)
    adapter = Path(artifacts["adapter"])
    tok_source = str(adapter) if (adapter / "tokenizer_config.json").is_file() else base_dir
    return model.eval(), load_tokenizer(tok_source)


class SPGDiffusionModel(mlflow.pyfunc.PythonModel):
    """pyfunc: prompts in, completions out (LLaDA block sampler with the registered generation config)."""

    def load_context(self, context) -> None:
        import torch

        cfg = dict(context.model_config or {})
        device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = cfg.get("dtype") or ("bfloat16" if str(device).startswith("cuda") else None)
        self.model, self.tokenizer = load_checkpoint(context.artifacts, cfg, device=device, dtype=dtype)
        self.device = torch.device(device)
        gen_file = context.artifacts.get("generation_config")
        self.generation = read_json(gen_file, what="generation config") if gen_file else {}
        self.use_chat_template = bool(cfg.get("chat_template", True))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        import torch

        from spg_lib.decoding import generate

        prompts = _as_prompts(model_input)
        gen = {**{"temperature": 0.0, "remasking": "low_confidence"}, **self.generation,
               **{k: v for k, v in (params or {}).items() if k in GENERATION_KEYS and v is not None}}
        tok = self.tokenizer
        if self.use_chat_template and getattr(tok, "chat_template", None):
            texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             tokenize=False) for p in prompts]
        else:
            texts = prompts
        encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        cfg = self.model.config
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else int(cfg.pad_token_id)
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, seq in enumerate(encoded):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            attn[row, width - len(seq):] = 1
        with torch.inference_mode():
            out = generate(self.model, ids.to(self.device), attn.to(self.device),
                           gen_length=int(gen["gen_length"]), block_length=int(gen["block_length"]),
                           steps=int(gen["steps"]), mask_id=int(cfg.mask_token_id),
                           temperature=float(gen["temperature"]), remasking=str(gen["remasking"]))
        return tok.batch_decode(out[:, width:].cpu(), skip_special_tokens=True)


def _as_prompts(model_input: Any) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns"):  # pandas DataFrame (what pyfunc serving hands over)
        column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[column].tolist()]
    if isinstance(model_input, dict) and "prompt" in model_input:
        value = model_input["prompt"]
        return [value] if isinstance(value, str) else [str(v) for v in value]
    return [str(v) for v in model_input]
