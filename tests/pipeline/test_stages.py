"""The pipeline's stage helpers: how a run's configuration is resolved (file, then named UI parameters, then dotted
overrides), run-scoped directories, the training task's own GPUs, Dataset metadata and Model artifact locations."""

from pathlib import Path

import pytest

from spg_lib.config import ConfigError
from spg_lib.pipeline.config import load_pipeline_config
from spg_lib.pipeline.stages import (
    UI_PARAMETERS,
    config_hash,
    dataset_metadata,
    model_dir_of,
    resolve_config,
    training_dir,
    training_task_gpus,
    ui_defaults,
)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"


def test_ui_parameters_fan_out_and_overrides_win():
    cfg = resolve_config(PARAMS, ["train.algo.name=d1"], {"task": "countdown", "method": "wd1", "base_model_uri": "",
                                                         "experiment": "exp-x", "gpus": 4})
    assert {cfg.data.task, cfg.sft.task, cfg.train.task, cfg.evaluate.task} == {"countdown"}
    assert cfg.train.algo.name == "d1"  # the dotted override is applied after the named parameter
    assert cfg.base_model.uri is None  # "" in the UI: SFT bootstrap
    assert cfg.train.experiment == "exp-x"
    assert cfg.kfp.gpus == 4


@pytest.mark.parametrize("path", [PARAMS, *sorted((ROOT / "configs" / "paper").glob("*.yaml"))], ids=lambda p: p.name)
def test_defaults_round_trip_to_the_same_tree(path):
    """A UI run with the compiled defaults resolves to exactly the file's tree (what `dvc repro` runs)."""
    cfg = load_pipeline_config(path)
    again = resolve_config(path, [], ui_defaults(cfg))
    assert config_hash(again) == config_hash(cfg)
    assert set(ui_defaults(cfg)) == set(UI_PARAMETERS)


def test_relative_config_file_resolves_against_workdir():
    assert resolve_config("params.yaml", [], workdir=ROOT).train.task == "sudoku"


@pytest.mark.parametrize(("ui", "overrides", "message"), [
    ({"task": "nosuch"}, [], "data.task (pipeline parameter task): unknown task 'nosuch'"),
    ({"colour": "red"}, [], "pipeline parameter 'colour' is not one of"),
    ({}, ["optim.lr=1"], "did you mean train.optim.lr?"),
    ({"gpus": -1}, [], "kfp.gpus must be >= 0"),
])
def test_bad_run_configuration_is_one_line(ui, overrides, message):
    with pytest.raises(ConfigError, match=None) as err:
        resolve_config(PARAMS, overrides, ui)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_training_dir_and_gpus():
    assert training_dir("s3://b/runs/", "123") == "s3://b/runs/123/train"
    with pytest.raises(ConfigError):
        training_dir("/mnt/ckpt", "../x")
    cfg = resolve_config(PARAMS, [], {"gpus": 8})
    assert training_task_gpus(cfg) == 8
    assert training_task_gpus(resolve_config(PARAMS, [], {"gpus": 8, "nodes": 2})) == 0  # the TrainJob has them


def test_dataset_metadata_hash_covers_every_split():
    manifest = {"task": "sudoku", "files": {"train": {"rows": 3, "sha256": "a" * 64},
                                            "test": {"rows": 2, "sha256": "b" * 64}}}
    meta = dataset_metadata(manifest)
    assert meta["rows_train"] == 3 and meta["rows_test"] == 2 and meta["hash_test"] == "b" * 64
    changed = dataset_metadata({**manifest, "files": {**manifest["files"], "test": {"rows": 2, "sha256": "c" * 64}}})
    assert changed["data_hash"] != meta["data_hash"]


def test_model_dir_of(tmp_path):
    (tmp_path / "art" / "model").mkdir(parents=True)
    assert model_dir_of({"checkpoint_subdir": "model"}, tmp_path / "art", tmp_path) == tmp_path / "art" / "model"
    assert model_dir_of({"checkpoint_uri": (tmp_path / "art").as_uri()}, "x", tmp_path) == tmp_path / "art"
    with pytest.raises(FileNotFoundError):
        model_dir_of({"checkpoint_uri": (tmp_path / "gone").as_uri()}, "x", tmp_path)
    with pytest.raises(ConfigError, match="neither s3:// nor file://"):
        model_dir_of({"checkpoint_uri": "gs://b/m"}, "x", tmp_path)
