"""`spg register` input validation (no MLflow server, nothing logged) and the lineage helpers."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from spg_lib.cli import main
from spg_lib.registry.lineage import dvc_lock_hashes, flat_params, git_commit, safe_key
from spg_lib.registry.register import champion_decision, local_artifact_root, read_eval_metrics
from tests.registry.helpers import PROTOCOL, save_tiny, write_metrics


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("inputs") / "model")


def _register(capsys, *args: str) -> tuple[int, str]:
    rc = main(["register", "--name", "bad", "--tracking-uri", "http://127.0.0.1:9", *args])
    return rc, capsys.readouterr().err


def test_missing_model_dir_exit_2(tmp_path, capsys):
    metrics = write_metrics(tmp_path / "metrics.json")
    missing = tmp_path / "no-such-model"
    rc, err = _register(capsys, "--model", str(missing), "--metrics", str(metrics))
    assert rc == 2
    assert str(missing) in err and "does not exist" in err


def test_model_dir_without_checkpoint_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, err = _register(capsys, "--model", str(tmp_path / "empty"), "--metrics",
                        str(write_metrics(tmp_path / "m.json")))
    assert rc == 2 and "config.json" in err and str(tmp_path / "empty") in err


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"drop": ("accuracy",)}, "missing required field 'accuracy'"),
    ({"accuracy": "high"}, "field 'accuracy' must be a finite number"),
    ({"accuracy": 140.0}, "field 'accuracy' must be a percentage"),
    ({"drop": ("gen_length",)}, "missing required field 'gen_length'"),
    ({"steps": 7.5}, "field 'steps' must be an integer"),
    ({"prompt_style": "short"}, "field 'prompt_style' must be one of ['paper', 'compact']"),
    ({"drop": ("data_hash",)}, "missing required field 'data_hash'"),
    ({"drop": ("schema_version",)}, "not a metrics file of `spg evaluate` (no 'schema_version'"),
    ({"extra": 1}, "unknown field(s) ['extra']"),
])
def test_bad_metrics_exit_2(model_dir, tmp_path, capsys, kwargs, needle):
    metrics = write_metrics(tmp_path / "metrics.json", **kwargs)
    rc, err = _register(capsys, "--model", str(model_dir), "--metrics", str(metrics))
    assert rc == 2
    assert needle in err and str(metrics) in err


def test_metrics_not_json_exit_2(model_dir, tmp_path, capsys):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    rc, err = _register(capsys, "--model", str(model_dir), "--metrics", str(bad))
    assert rc == 2 and "not valid JSON" in err and str(bad) in err


def test_lora_adapter_without_base_exit_2(tmp_path, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    rc, err = _register(capsys, "--model", str(adapter), "--metrics", str(write_metrics(tmp_path / "m.json")))
    assert rc == 2 and "--base-model" in err


def test_missing_params_file_exit_2(model_dir, tmp_path, capsys):
    rc, err = _register(capsys, "--model", str(model_dir), "--metrics", str(write_metrics(tmp_path / "m.json")),
                        "--config", str(tmp_path / "params.yaml"))
    assert rc == 2 and str(tmp_path / "params.yaml") in err


def test_read_eval_metrics_normalises_types(tmp_path):
    metrics = read_eval_metrics(write_metrics(tmp_path / "m.json", gen_length=8.0, temperature=0))
    assert metrics.protocol == PROTOCOL
    assert isinstance(metrics.protocol.gen_length, int) and isinstance(metrics.protocol.temperature, float)


@pytest.mark.parametrize(("field", "value"), [
    ("prompt_style", "compact"), ("data_hash", "0" * 64), ("temperature", 0.3), ("remasking", "random"),
    ("mode", "faithful"), ("n", 5), ("gen_length", 16), ("block_length", 4), ("steps", 4), ("task", "sudoku"),
])
def test_champion_gate_refuses_any_protocol_difference(field, value):
    other = dataclasses.replace(PROTOCOL, **{field: value})
    becomes, why = champion_decision("m", "2", other, 99.0, "1", PROTOCOL, 10.0)
    assert not becomes
    assert f"protocol differs from champion v1 ({field}: {getattr(PROTOCOL, field)!r} (champion) vs {value!r})" in why
    assert champion_decision("m", "2", PROTOCOL, 99.0, "1", PROTOCOL, 10.0)[0]  # same protocol: ranked
    assert not champion_decision("m", "2", PROTOCOL, 10.0, "1", PROTOCOL, 10.0)[0]  # a tie keeps the champion


def test_dvc_lock_hashes(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\n"
        "stages:\n"
        "  prepare_data:\n"
        "    cmd: spg prepare-data\n"
        "    deps:\n"
        "    - path: data/raw\n"
        "      hash: md5\n"
        "      md5: 0123abcd.dir\n"
        "      size: 10\n"
        "    outs:\n"
        "    - path: data/gsm8k/test.jsonl\n"
        "      hash: md5\n"
        "      md5: 89ef\n"
        "  train@gsm8k:\n"
        "    cmd: spg train\n"
        "    params:\n"
        "      params.yaml:\n"
        "        train.lr: 1e-5\n"
        "    outs:\n"
        "    - path: runs/train/final\n"
        "      md5: aa55.dir\n"
    )
    assert dvc_lock_hashes(lock) == {
        "prepare_data.deps.data/raw": "0123abcd.dir",
        "prepare_data.outs.data/gsm8k/test.jsonl": "89ef",
        "train@gsm8k.outs.runs/train/final": "aa55.dir",
    }
    assert safe_key("dvc.train@gsm8k.outs.runs/train/final") == "dvc.train_gsm8k.outs.runs/train/final"
    assert safe_key("dvc.s.deps.../x//./y") == "dvc.s.deps.../x/y"
    assert safe_key("/abs/../p") == "abs/__/p"


def test_flat_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 1.0e-5\n  lora: {r: 8, targets: [q_proj, v_proj]}\n  name: x\n  empty: {}\n")
    assert flat_params(params) == {"train.lr": "1e-05", "train.lora.r": "8",
                                   "train.lora.targets": '["q_proj", "v_proj"]', "train.name": "x",
                                   "train.empty": "{}"}


def test_git_commit_outside_repo_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"


def test_local_artifact_root(tmp_path):
    assert local_artifact_root("sqlite:///mlruns.db", tmp_path) == tmp_path.resolve() / "mlartifacts"
    assert local_artifact_root(f"sqlite:///{tmp_path}/db/x.db") == tmp_path / "db" / "mlartifacts"
    assert local_artifact_root("http://127.0.0.1:5000") is None


def test_using_tracking_uri_restores_the_callers_setting(tmp_path, monkeypatch):
    """Unset before -> unset after (MLflow mirrors the URI into MLFLOW_TRACKING_URI: that goes away too); an
    environment setting comes back unchanged."""
    import mlflow

    from spg_lib.registry.store import using_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    inside = f"sqlite:///{tmp_path / 'a.db'}"
    with using_tracking_uri(inside):
        assert mlflow.get_tracking_uri() == inside
    assert not mlflow.is_tracking_uri_set() and "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    with using_tracking_uri(inside):
        assert mlflow.get_tracking_uri() == inside
    assert mlflow.get_tracking_uri() == os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'env.db'}"
    mlflow.set_tracking_uri(None)
