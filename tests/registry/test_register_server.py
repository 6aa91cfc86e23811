"""`spg register` against a real MLflow server (artifacts in SeaweedFS): aliases, tags, round trip of the weights.

One registered model name per module; the registrations run in order inside `test_champion_lifecycle` (v2-v5)
after the module fixture's v1.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from spg_lib.cli import main
from spg_lib.models import load_model, load_tokenizer
from spg_lib.registry.register import download_model
from spg_lib.registry.store import using_tracking_uri
from tests.registry.helpers import logits, save_tiny, write_metrics


def _register_cli(capsys, uri: str, model, metrics, name: str, *extra: str) -> dict:
    rc = main(["register", "--model", str(model), "--metrics", str(metrics), "--name", name,
               "--tracking-uri", uri, *extra])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out) | {"stderr": err}  # stdout is exactly one JSON object


@pytest.fixture(scope="module")
def registered(mlflow_server, tmp_path_factory):
    """v1 of a fresh name: tiny model (seed 1), accuracy 50 under the tiny protocol, params + dvc.lock recorded."""
    from spg_lib.registry.register import register_model

    root = tmp_path_factory.mktemp("registered")
    model = save_tiny(root / "model", seed=1)
    params = root / "params.yaml"
    params.write_text("train:\n  lr: 1.0e-5\n  algo:\n    name: spg\n    beta: 1.5\n")
    lock = root / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  evaluate:\n    cmd: spg evaluate\n    deps:\n"
                    "    - path: data/gsm8k/test.jsonl\n      hash: md5\n      md5: d41d8cd98f00b204e9800998ecf8427e\n")
    name = f"spg-tiny-{uuid.uuid4().hex[:8]}"
    before = mlflow.get_tracking_uri()
    reg = register_model(model, write_metrics(root / "m1.json", 50.0), name, tracking_uri=mlflow_server.uri,
                         params_file=params, dvc_lock=lock)
    assert mlflow.get_tracking_uri() == before  # the caller's MLflow setting is restored
    return {"reg": reg, "name": name, "model": model, "root": root}


def test_first_version_gets_both_aliases_and_lineage_tags(registered, mlflow_server):
    reg = registered["reg"]
    assert (reg.version, reg.aliases, reg.champion) == ("1", ["candidate", "champion"], True)
    assert reg.model_uri == f"models:/{registered['name']}/1" and reg.run_id
    client = MlflowClient(mlflow_server.uri)
    mv = client.get_model_version(registered["name"], "1")
    tags = mv.tags
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "unknown"
    assert tags["git.commit"] == head
    assert tags["params.train.lr"] == "1e-05" and tags["params.train.algo.beta"] == "1.5"
    assert tags["dvc.evaluate.deps.data/gsm8k/test.jsonl"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert float(tags["eval.accuracy"]) == 50.0 and tags["eval.task"] == "gsm8k" and tags["eval.n"] == "4"
    assert json.loads(tags["eval.protocol"])["gen_length"] == 8
    assert tags["model.kind"] == "full"
    assert "| accuracy | 50 |" in mv.description  # the model card
    run = client.get_run(reg.run_id)
    assert run.data.metrics["eval_accuracy"] == 50.0 and run.data.params["train.algo.name"] == "spg"
    assert {a.path for a in client.list_artifacts(reg.run_id)} >= {"README.md", "evaluation"}


def test_artifacts_live_in_seaweedfs(registered, mlflow_server, seaweedfs):
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=mlflow_server.bucket).get("Contents", [])]
    assert any(k.startswith("mlartifacts/") and k.endswith("artifacts/model/model.safetensors") for k in keys), keys


def test_download_and_load_gives_same_logits(registered, mlflow_server, tmp_path):
    original = load_model(str(registered["model"]))
    ckpt = download_model(f"models:/{registered['name']}/1", tmp_path / "dl", tracking_uri=mlflow_server.uri)
    assert (ckpt / "config.json").is_file() and (ckpt / "spg_run.json").is_file()
    assert torch.equal(logits(load_model(str(ckpt))), logits(original))
    assert load_tokenizer(str(ckpt)).mask_token == "<|mdm_mask|>"
    gen = json.loads((ckpt.parent / "generation_config.json").read_text())
    assert gen == {"gen_length": 8, "steps": 8, "block_length": 8, "temperature": 0.0, "remasking": "low_confidence"}
    assert "## Evaluation: gsm8k" in (ckpt.parent / "README.md").read_text()

    with using_tracking_uri(mlflow_server.uri):  # restored afterwards: later tests see no leaked global URI
        pyfunc = mlflow.pyfunc.load_model(f"models:/{registered['name']}/1")
    inner = pyfunc.unwrap_python_model()
    assert torch.equal(logits(inner.model), logits(original))
    out = pyfunc.predict(["2+3?", "hi"], params={"gen_length": 4, "steps": 4, "block_length": 4})
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(s, str) for s in out)


def test_champion_lifecycle(registered, mlflow_server, tmp_path, capsys):
    uri, name, model = mlflow_server.uri, registered["name"], registered["model"]
    client = MlflowClient(uri)

    def champion() -> str:
        return client.get_model_version_by_alias(name, "champion").version

    def candidate() -> str:
        return client.get_model_version_by_alias(name, "candidate").version

    v2 = _register_cli(capsys, uri, model, write_metrics(tmp_path / "m2.json", 40.0), name)
    assert (v2["version"], v2["aliases"], v2["champion"]) == ("2", ["candidate"], False)
    assert (champion(), candidate()) == ("1", "2")
    assert "does not beat champion v1" in v2["champion_decision"]

    v3 = _register_cli(capsys, uri, model, write_metrics(tmp_path / "m3.json", 62.5), name)
    assert (v3["version"], v3["aliases"], v3["champion"]) == ("3", ["candidate", "champion"], True)
    assert (champion(), candidate()) == ("3", "3")
    assert client.get_model_version(name, "1").aliases == []

    # a much higher accuracy under another protocol (longer generation) is not comparable
    v4 = _register_cli(capsys, uri, model, write_metrics(tmp_path / "m4.json", 99.0, gen_length=16, steps=16),
                       name)
    assert (v4["version"], v4["aliases"], v4["champion"]) == ("4", ["candidate"], False)
    assert "protocol differs" in v4["champion_decision"] and "gen_length" in v4["champion_decision"]
    assert (champion(), candidate()) == ("3", "4")
    assert client.get_model_version(name, "4").tags["champion_decision"] == v4["champion_decision"]

    # same decoding but other test data (another content hash): not comparable either
    v5 = _register_cli(capsys, uri, model, write_metrics(tmp_path / "m5.json", 99.0, data_hash="0" * 64), name)
    assert v5["champion"] is False and "data_hash" in v5["champion_decision"]
    assert champion() == "3"
