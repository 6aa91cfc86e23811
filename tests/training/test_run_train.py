"""run_train / TrainConfig edges: the 4-bit base fails early and clearly where it cannot work; plugins."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from spg_lib.training.config import LoRASettings, TrainConfig
from spg_lib.training.run import check_4bit_support, run_train

HAS_4BIT = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


def test_4bit_needs_lora_and_a_loadable_checkpoint():
    with pytest.raises(ValueError, match=r"train\.lora\.load_in_4bit needs train\.lora\.enabled"):
        TrainConfig(model="org/model", lora=LoRASettings(enabled=False, load_in_4bit=True))
    with pytest.raises(ValueError, match=r"train\.lora\.load_in_4bit.*builtin:tiny"):
        TrainConfig(lora=LoRASettings(load_in_4bit=True))


@pytest.mark.skipif(HAS_4BIT, reason="this machine can load a 4-bit base")
def test_4bit_without_gpu_or_bitsandbytes_fails_before_loading(tmp_path):
    cfg = TrainConfig(model=str(tmp_path / "no-such-checkpoint"), task="sudoku",
                      train_data=str(tmp_path / "no-such-data.jsonl"), out_dir=str(tmp_path / "out"),
                      lora=LoRASettings(load_in_4bit=True))
    with pytest.raises(ValueError, match=r"train\.lora\.load_in_4bit") as err:
        run_train(cfg, progress=False)  # neither the data nor the model path exists: the check comes first
    msg = str(err.value)
    assert ("no CUDA GPU" in msg) == (not torch.cuda.is_available())
    assert ("bitsandbytes is not installed" in msg) == (importlib.util.find_spec("bitsandbytes") is None)
    assert not (tmp_path / "out").exists()
    check_4bit_support(TrainConfig())  # off: nothing to check


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_4BIT, reason="needs CUDA and bitsandbytes")
def test_4bit_base_loads_nf4(tmp_path):
    from spg_lib.models import init_tiny_model
    from spg_lib.training.run import load_base_model

    init_tiny_model().save_pretrained(tmp_path / "tiny")
    model = load_base_model(TrainConfig(model=str(tmp_path / "tiny"), lora=LoRASettings(load_in_4bit=True)))
    linear4 = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert linear4 and all(m.weight.quant_type == "nf4" for m in linear4)


def test_unknown_plugin_is_a_config_error(tmp_path):
    cfg = TrainConfig(plugins=["no_such_module_xyz"], out_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"train\.plugins.*no_such_module_xyz"):
        run_train(cfg, progress=False)
