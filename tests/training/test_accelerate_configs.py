"""configs/accelerate/*.yaml read by accelerate's own loaders (no GPU, no DeepSpeed needed): the launcher's view
of each file, the plugin settings a launched process would build, and agreement with the train config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

from spg_lib.training.config import TrainConfig
from spg_lib.training.trainer import configure_deepspeed

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "accelerate"
EXPECTED = {  # file -> (distributed_type, mixed_precision in the YAML)
    "ddp": (DistributedType.MULTI_GPU, "bf16"),
    "fsdp": (DistributedType.FSDP, "bf16"),
    "zero2": (DistributedType.DEEPSPEED, None),  # with a DeepSpeed JSON, precision lives there (bf16)
    "zero3": (DistributedType.DEEPSPEED, None),
}


def _launch_env(name: str, monkeypatch) -> dict[str, str]:
    """The environment `accelerate launch --config_file <name>.yaml` gives its processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    monkeypatch.chdir(ROOT)
    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "spg_lib.cli",
                                               "train"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as launch_command does
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_yaml_loads_with_accelerate(name):
    path = CONFIGS / f"{name}.yaml"
    cfg = load_config_from_file(str(path))
    assert isinstance(cfg, ClusterConfig)
    assert ClusterConfig.from_yaml_file(str(path)).to_dict() == cfg.to_dict()
    dist, precision = EXPECTED[name]
    assert cfg.distributed_type == dist
    assert cfg.num_processes == 8 and cfg.num_machines == 1 and cfg.machine_rank == 0
    assert cfg.mixed_precision == precision
    assert not cfg.use_cpu
    # the paper's batch geometry splits evenly over these processes (prompts × g / (processes × grad_accum))
    TrainConfig().check_world(cfg.num_processes)


def test_fsdp_wraps_llada_blocks_with_orig_params(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import ShardingStrategy

    from spg_lib.models import modeling_llada

    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    block = fsdp["fsdp_transformer_layer_cls_to_wrap"]
    assert isinstance(getattr(modeling_llada, block), type)
    assert block in modeling_llada.LLaDAModelLM._no_split_modules
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_use_orig_params"] is True  # LoRA: frozen and trainable parameters in one FSDP unit
    for key, value in _launch_env("fsdp", monkeypatch).items():
        monkeypatch.setenv(key, value)
    assert fsdp["fsdp_sync_module_states"] is True
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")  # building the plugin with it needs a GPU
    plugin = FullyShardedDataParallelPlugin()  # what a launched process builds from that environment
    assert plugin.sharding_strategy == ShardingStrategy.FULL_SHARD
    assert plugin.use_orig_params is True
    assert plugin.transformer_cls_names_to_wrap == [block]


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_deepspeed_configs_agree_with_the_train_loop(name, stage, monkeypatch):
    from accelerate.utils import DeepSpeedPlugin

    ds_yaml = load_config_from_file(str(CONFIGS / f"{name}.yaml")).deepspeed_config
    json_path = ROOT / ds_yaml["deepspeed_config_file"]
    assert json_path.parent == CONFIGS and json_path.is_file()
    ds = json.loads(json_path.read_text())
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["bf16"]["enabled"] is True
    train = TrainConfig()
    assert ds["gradient_clipping"] == train.optim.max_grad_norm == 0.2
    assert "optimizer" not in ds and "scheduler" not in ds  # AdamW and the LR schedule come from train.optim
    if stage == 3:
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True  # get_state_dict works

    # what a launched process builds: the accelerate-side checks pass (no conflicting fields in the YAML)
    for key, value in _launch_env(name, monkeypatch).items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    plugin.set_mixed_precision("no")  # AcceleratorState passes the YAML's (absent) precision
    assert plugin.zero_stage == stage
    assert plugin.deepspeed_config["bf16"]["enabled"] is True
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"

    # the trainer fills the per-run values from `train` before accelerator.prepare
    mb = train.rows_per_step // (8 * train.grad_accum)
    filled = configure_deepspeed(copy.deepcopy(plugin.deepspeed_config), grad_accum=train.grad_accum,
                                 micro_batch_size=mb, max_grad_norm=train.optim.max_grad_norm)
    assert filled["gradient_accumulation_steps"] == train.grad_accum
    assert filled["train_micro_batch_size_per_gpu"] == mb == 6
    assert filled["gradient_clipping"] == 0.2
    with pytest.raises(ValueError, match=r"gradient_clipping.*train\.optim\.max_grad_norm"):
        configure_deepspeed(copy.deepcopy(ds), grad_accum=2, micro_batch_size=6, max_grad_norm=1.0)
    with pytest.raises(ValueError, match=r"gradient_accumulation_steps.*train\.grad_accum"):
        configure_deepspeed({**ds, "gradient_accumulation_steps": 1}, grad_accum=2, micro_batch_size=6,
                            max_grad_norm=0.2)


def test_readme_shows_the_launch_command():
    text = (CONFIGS / "README.md").read_text()
    assert "accelerate launch --config_file configs/accelerate/ddp.yaml -m spg_lib.cli train --config params.yaml" \
        in text
    assert "--machine_rank" in text and "--main_process_ip" in text  # multi-node notes
