"""`spg register` with no server: the default local store (sqlite:///./mlruns.db + ./mlartifacts), here with a
LoRA adapter (registered as adapter + base model reference, loaded back merged through the pyfunc), and the
champion gate refusing to rank evaluations run with different prompt styles."""

from __future__ import annotations

import json

import mlflow
import torch

from spg_lib.cli import main
from spg_lib.models import init_tiny_model
from spg_lib.registry.register import download_model
from spg_lib.registry.store import using_tracking_uri
from tests.registry.helpers import logits, save_tiny, write_metrics


def _tiny_lora_adapter(out):
    from peft import LoraConfig, get_peft_model

    base = init_tiny_model()  # == load_model("builtin:tiny"): seed-0 initialisation
    names = [n for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and ".blocks." in f".{n}"]
    targets = [n for n in names if n.rsplit(".", 1)[-1] in ("q_proj", "v_proj")]
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # B starts at zero: make the adapter change the logits
    model.save_pretrained(out)
    return logits(model.merge_and_unload())


def test_local_default_store_without_server(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # not a git repository, no dvc.lock
    merged = _tiny_lora_adapter(tmp_path / "adapter")
    assert not torch.equal(merged, logits(init_tiny_model()))
    metrics = write_metrics(tmp_path / "metrics.json", 30.0)

    rc = main(["register", "--model", "adapter", "--metrics", str(metrics), "--name", "tiny-lora",
               "--base-model", "builtin:tiny", "--out", "runs/register/registered.json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    reg = json.loads(out)
    assert json.loads((tmp_path / "runs/register/registered.json").read_text()) == reg
    assert reg["tracking_uri"] == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    assert (reg["version"], reg["aliases"]) == ("1", ["candidate", "champion"])
    assert (tmp_path / "mlruns.db").is_file()
    assert list((tmp_path / "mlartifacts").rglob("adapter_model.safetensors"))

    tags = mlflow.MlflowClient(reg["tracking_uri"]).get_model_version("tiny-lora", "1").tags
    assert (tags["model.kind"], tags["model.base"], tags["git.commit"]) == ("lora", "builtin:tiny", "unknown")
    adapter_dir = download_model("models:/tiny-lora@champion", tmp_path / "dl", tracking_uri=reg["tracking_uri"])
    assert adapter_dir.name == "adapter" and (adapter_dir / "adapter_config.json").is_file()
    with using_tracking_uri(reg["tracking_uri"]):  # the global URI (and $MLFLOW_TRACKING_URI) restored after
        loaded = mlflow.pyfunc.load_model("models:/tiny-lora@candidate").unwrap_python_model()
    assert torch.allclose(logits(loaded.model), merged, atol=1e-5)


def test_champion_gate_refuses_a_comparison_across_prompt_styles(tmp_path, monkeypatch, capsys):
    """v1 evaluated with compact prompts is champion; v2 scores far higher with the paper prompts, which is
    another protocol: v2 becomes candidate only, and the decision names the prompt style."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    model = save_tiny(tmp_path / "model")

    def register(metrics) -> dict:
        rc = main(["register", "--model", str(model), "--metrics", str(metrics), "--name", "tiny"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        return json.loads(out)

    v1 = register(write_metrics(tmp_path / "compact.json", 30.0, prompt_style="compact"))
    assert (v1["version"], v1["champion"]) == ("1", True)
    v2 = register(write_metrics(tmp_path / "paper.json", 90.0, prompt_style="paper"))
    assert (v2["version"], v2["aliases"], v2["champion"]) == ("2", ["candidate"], False)
    assert "prompt_style: 'compact' (champion) vs 'paper'" in v2["champion_decision"]
    client = mlflow.MlflowClient(v2["tracking_uri"])
    assert str(client.get_model_version_by_alias("tiny", "champion").version) == "1"
    assert client.get_model_version("tiny", "2").tags["champion_decision"] == v2["champion_decision"]
