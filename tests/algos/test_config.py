"""spg_lib.algos.config.AlgoConfig: faithful/fixed resolution, help metadata and validation errors."""

from __future__ import annotations

import dataclasses

import pytest

from spg_lib.algos.config import MODE_DEFAULTS, AlgoConfig
from spg_lib.config import ConfigError, from_dict


def test_faithful_mode_matches_official_settings() -> None:
    cfg = AlgoConfig(mode="faithful")
    assert (cfg.name, cfg.forward_type, cfg.num_mc, cfg.block_length, cfg.gen_length) == (
        "spg", "block_random", 2, 32, 256)
    assert (cfg.p_mask_prompt, cfg.use_mask_prompt, cfg.neg_estimator, cfg.eubo_beta, cfg.mix_weight) == (
        0.15, True, "mix", 1.5, 0.5)
    assert (cfg.min_t, cfg.max_t, cfg.kl_beta, cfg.num_iterations) == (0.0, 1.0, 0.0, 4)
    assert cfg.seed_index_mode == "legacy_modulo" and cfg.rng_mode == "global_reseed"
    assert cfg.include_later_blocks_in_bounds is True and cfg.eubo_drop_unmasked_tokens is True
    assert cfg.loss_norm == "completion_tokens"
    assert cfg.mask_seed_layout == "slot" and cfg.eubo_drop_underflow is True and cfg.rollout_train_mode is True


def test_fixed_is_default_and_explicit_flags_win() -> None:
    cfg = AlgoConfig()
    assert cfg.mode == "fixed"
    for key, value in MODE_DEFAULTS["fixed"].items():
        assert getattr(cfg, key) == value
    mixed = AlgoConfig(mode="faithful", loss_norm="max_length", neg_estimator="eubo", eubo_beta=2.0)
    assert mixed.loss_norm == "max_length" and mixed.seed_index_mode == "legacy_modulo"
    assert AlgoConfig(eubo_drop_unmasked_tokens=True).eubo_drop_unmasked_tokens is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_mc = 3  # type: ignore[misc]


def test_every_field_documented() -> None:
    for f in dataclasses.fields(AlgoConfig):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "grpo"}, "name"),
        ({"mode": "paper"}, "mode"),
        ({"advantage": "rank"}, "advantage"),
        ({"forward_type": "blocks"}, "forward_type"),
        ({"neg_estimator": "ubo"}, "neg_estimator"),
        ({"eubo_beta": 0.0}, "eubo_beta"),
        ({"eubo_beta": -1.0}, "eubo_beta"),
        ({"mix_weight": 1.1}, "mix_weight"),
        ({"mix_weight": -0.1}, "mix_weight"),
        ({"num_mc": 0}, "num_mc"),
        ({"block_length": 30}, "block_length"),
        ({"block_length": 0}, "block_length"),
        ({"forward_type": "all", "num_mc": 2}, "num_mc"),
        ({"num_mc": 9}, "num_mc"),  # > NB = 8 blocks
        ({"min_t": 0.6, "max_t": 0.5}, "min_t"),
        ({"p_mask_prompt": 1.5}, "p_mask_prompt"),
        ({"kl_beta": 0.04}, "kl_beta"),  # SPG forbids a KL term
        ({"name": "d1", "kl_beta": -0.1}, "kl_beta"),
        ({"clip_eps": -0.1}, "clip_eps"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"seed_index_mode": "modulo"}, "seed_index_mode"),
        ({"rng_mode": "global"}, "rng_mode"),
        ({"loss_norm": "tokens"}, "loss_norm"),
        ({"gen_length": 0}, "gen_length"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"algo\.{field}"):
        AlgoConfig(**overrides)


def test_valid_baseline_configs() -> None:
    assert AlgoConfig(name="d1", forward_type="all", num_mc=1, kl_beta=0.04).kl_beta == 0.04
    assert AlgoConfig(name="espo", advantage="leave_one_out", kl_beta=1e-3, clip_eps=0.2).name == "espo"
    assert AlgoConfig(forward_type="random", num_mc=16).num_mc == 16  # random has no block limit


def test_loads_through_project_config_loader() -> None:
    cfg = from_dict(AlgoConfig, {"mode": "faithful", "neg_estimator": "eubo", "eubo_beta": 2})
    assert cfg.eubo_beta == 2.0 and cfg.loss_norm == "completion_tokens"
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(AlgoConfig, {"betaa": 1.0})
    with pytest.raises(ConfigError, match="mix_weight"):
        from_dict(AlgoConfig, {"mix_weight": 3})
