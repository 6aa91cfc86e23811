"""``AlgoConfig``: the RL-algorithm settings, with a faithful/fixed mode switch.

    cfg = AlgoConfig()                                   # mode "fixed": official defects corrected
    cfg = AlgoConfig(mode="faithful")                    # the official SPG-Mixture GSM8K settings, defects included
    cfg = AlgoConfig(mode="faithful", neg_estimator="eubo", eubo_beta=2.0)

Mode-dependent flags default to ``None`` and are resolved from ``mode`` in ``__post_init__`` (an explicit
value always wins): ``MODE_DEFAULTS`` holds the method-independent ones; under ``mode: faithful`` the mask-seed
flags (``seed_index_mode``, ``mask_seed_layout``) come from the method's spec (``MethodSpec.faithful_seeds``,
its official trainer's seed policy). So ``mode: faithful`` in ``params.yaml`` is enough to reproduce the
official code and a single flag can still be flipped for an ablation; docs/faithful-vs-fixed.md lists each
flag with the official defect it covers. Method names, advantages and negative estimators are validated
against their registries (``spg_lib.algos.registry``), so a method registered by a plugin is accepted here.

The config stops at the trainer boundary: the method specs (``spg_lib.algos.methods``) unpack these scalars
and call the pure functions in ``masking``, ``likelihood`` and ``objectives`` with keywords.

Test: ``pytest tests/algos/test_config.py``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from spg_lib.algos.masking import (
    RNG_MODES,
    SEED_INDEX_MODES,
    SEED_LAYOUTS,
    ForwardType,
    RngMode,
    SeedIndexMode,
    SeedLayout,
)
from spg_lib.algos.objectives import LOSS_NORMS, LossNorm
from spg_lib.algos.registry import ADVANTAGES, METHODS, NEG_ESTIMATORS
from spg_lib.config import param

Mode = Literal["fixed", "faithful"]
MODES: tuple[str, ...] = typing.get_args(Mode)
FORWARD_TYPES: tuple[str, ...] = typing.get_args(ForwardType)

# mode -> resolved value of each method-independent mode flag (faithful seed flags: the method's spec)
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "faithful": {
        "rng_mode": "global_reseed",
        "include_later_blocks_in_bounds": True,
        "eubo_drop_unmasked_tokens": True,
        "eubo_drop_underflow": True,
        "loss_norm": "completion_tokens",
        "rollout_train_mode": True,
    },
    "fixed": {
        "seed_index_mode": "per_iteration",
        "mask_seed_layout": "rollout",
        "rng_mode": "local_generator",
        # kept True: a modelling choice behind the published numbers, not a defect
        "include_later_blocks_in_bounds": True,
        "eubo_drop_unmasked_tokens": False,
        "eubo_drop_underflow": False,
        "loss_norm": "max_length",
        "rollout_train_mode": False,
    },
}


@dataclasses.dataclass(frozen=True)
class AlgoConfig:
    """RL objective + likelihood-estimator settings. Defaults = the official SPG-Mixture GSM8K run."""

    name: str = param("spg", "method, a name registered in spg_lib.algos.registry.METHODS: spg | d1 | wd1 | "
                             "unigrpo | espo (or a plugin's)")
    mode: Mode = param("fixed", "fixed (official defects corrected) | faithful (reproduce the official code); "
                                "resolves every flag left at None")
    advantage: str = param("group_center", "advantage estimator: group_center (SPG/D1: R − mean) | leave_one_out "
                                           "(ESPO) | group_zscore (GRPO)")
    # --- SPG forward process ---
    forward_type: ForwardType = param("block_random", "all | random | block_all | block_random (every SPG run)")
    num_mc: int = param(2, "m, MC samples per sequence (`num_t`; 2 in every SPG run)")
    gen_length: int = param(256, "L, completion canvas length (max_completion_length 256)")
    block_length: int = param(32, "K, block size of block masking (= decoding block_length 32)")
    min_t: float = param(0.0, "lower mask-ratio bound of random/block_random (official 0.0)")
    max_t: float = param(1.0, "upper mask-ratio bound of random/block_random (official 1.0)")
    p_mask_prompt: float = param(0.15, "p, prob. of masking prompt and clean earlier-block tokens (YAML 0.15)")
    use_mask_prompt: bool = param(True, "apply the p-perturbation (True in every run; Table 19 ablates it)")
    # --- SPG bounds ---
    neg_estimator: str = param("mix", "negative-trace estimator: eubo | mix | elbo | zero (`logp_estimation`)")
    eubo_beta: float = param(1.5, "Rényi β of the EUBO (1.5; Countdown-EUBO 2.0, Sudoku 1.0; must be > 0, ≥ 1 for "
                                  "a valid bound)")
    mix_weight: float = param(0.5, "ω of Mixture = ω·EUBO + (1−ω)·ELBO (0.5 in all runs)")
    # --- ratio / KL baselines ---
    kl_beta: float = param(0.0, "KL coefficient (must be 0 for SPG; D1 0.04, UniGRPO 0.01, ESPO 1e-3..1e-2)")
    clip_eps: float = param(0.5, "ratio clip ε (D1 0.5, UniGRPO 0.2, ESPO 0.2; unused by SPG/WD1)")
    clip_eps_high: float | None = param(None, "upper clip ε for ESPO (None → clip_eps)")
    num_iterations: int = param(4, "μ, inner iterations per rollout (NUM_ITER=4 in every SPG-repo script)")
    unigrpo_num_steps: int = param(1000, "T of UniGRPO structured noising t_n = ⌊(n−1)/(μ−1)(T−t₁)+t₁⌋")
    # --- faithful-vs-fixed flags (None → from `mode`; docs/faithful-vs-fixed.md) ---
    seed_index_mode: SeedIndexMode | None = param(
        None, "legacy_modulo (faithful SPG/D1/WD1/UniGRPO: (micro-step counter after increment) mod μ, aliases "
              "seeds across micro-batches) | per_iteration (fixed, and faithful ESPO: inner iteration n uses seed n)")
    mask_seed_layout: SeedLayout | None = param(
        None, "rollout (fixed: one μ-seed array per rollout, micro-batches told apart by the local generator) | "
              "slot (faithful SPG/D1/WD1/UniGRPO: one array per micro-batch slot, so slots j ≡ j′ mod μ no longer "
              "share masks) | slot_sample (faithful ESPO: one seed per slot, inner iteration and MC sample)")
    rng_mode: RngMode | None = param(
        None, "global_reseed (faithful structure: masks a function of the 12-bit seed only, emulated with a local "
              "generator — official bit streams are not reproduced, global RNG never touched) | local_generator "
              "(fixed: seeded from (seed, rollout, micro-batch))")
    include_later_blocks_in_bounds: bool | None = param(
        None, "True: bounds sum over every masked completion token incl. later blocks (official, both modes) | "
              "False: only the chosen block and earlier ones (paper prose)")
    eubo_drop_unmasked_tokens: bool | None = param(
        None, "True (faithful): EUBO = mean over tokens masked ≥ 1 time, ×L_c up-weights them by L_c/|U| | False "
              "(fixed): paper sum form over those tokens, no L_c/|U| rescaling")
    eubo_drop_underflow: bool | None = param(
        None, "True (faithful): tokens whose p^β, formed in fp32 as the official code does, underflows to 0 leave "
              "the EUBO (and |U|) | False (fixed): every masked token kept (the EUBO is computed in log space)")
    loss_norm: LossNorm | None = param(
        None, "completion_tokens (faithful: /Σ L_c of the micro-batch) | max_length (fixed: /(B·L), paper's 1/g "
              "objective up to a constant, independent of micro-batch composition) | sequences (/B)")
    rollout_train_mode: bool | None = param(
        None, "True (faithful): rollouts and old/reference estimates run with the policy in train mode (LoRA "
              "dropout active, as the official trainers) | False (fixed): eval mode (no dropout)")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"algo.mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.name not in METHODS:
            raise ValueError(f"algo.name: unknown method; valid: {METHODS.names()} (got {self.name!r})")
        defaults = dict(MODE_DEFAULTS[self.mode])
        if self.mode == "faithful":
            seeds = METHODS.get(self.name).faithful_seeds
            defaults.update(seed_index_mode=seeds.index_mode, mask_seed_layout=seeds.layout)
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        self._validate()

    def _validate(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"algo.{field}: {why} (got {getattr(self, field)!r})")

        spec = METHODS.get(self.name)
        if self.advantage not in ADVANTAGES:
            bad("advantage", f"unknown advantage; valid: {ADVANTAGES.names()}")
        if self.forward_type not in FORWARD_TYPES:
            bad("forward_type", f"unknown forward type; valid: {list(FORWARD_TYPES)}")
        valid_neg = NEG_ESTIMATORS.names() if spec.neg_estimators is None else list(spec.neg_estimators)
        if self.neg_estimator not in valid_neg:
            bad("neg_estimator", f"unknown estimator for method {self.name!r}; valid: {valid_neg}")
        if self.num_mc < 1:
            bad("num_mc", "must be >= 1")
        if self.gen_length < 1:
            bad("gen_length", "must be >= 1")
        if self.block_length < 1 or self.gen_length % self.block_length:
            bad("block_length", f"must be >= 1 and divide gen_length ({self.gen_length})")
        if self.forward_type == "all" and self.num_mc != 1:
            bad("num_mc", "forward_type 'all' is deterministic on the completion and requires num_mc == 1")
        if self.forward_type.startswith("block") and self.num_mc > self.gen_length // self.block_length:
            bad("num_mc", f"block masking picks distinct blocks from randperm(NB); needs num_mc <= NB = "
                          f"{self.gen_length // self.block_length}")
        if not 0.0 <= self.min_t <= self.max_t <= 1.0:
            bad("min_t", f"need 0 <= min_t <= max_t <= 1 (max_t={self.max_t})")
        if not 0.0 <= self.p_mask_prompt <= 1.0:
            bad("p_mask_prompt", "must be in [0, 1]")
        if not self.eubo_beta > 0.0:
            bad("eubo_beta", "must be > 0")
        if not 0.0 <= self.mix_weight <= 1.0:
            bad("mix_weight", "must be in [0, 1]")
        if self.kl_beta < 0.0:
            bad("kl_beta", "must be >= 0")
        if self.clip_eps < 0.0:
            bad("clip_eps", "must be >= 0")
        if self.clip_eps_high is not None and self.clip_eps_high < 0.0:
            bad("clip_eps_high", "must be >= 0")
        if self.num_iterations < 1:
            bad("num_iterations", "must be >= 1")
        if self.unigrpo_num_steps < 1:
            bad("unigrpo_num_steps", "must be >= 1")
        if self.seed_index_mode not in SEED_INDEX_MODES:
            bad("seed_index_mode", f"valid: {list(SEED_INDEX_MODES)}")
        if self.mask_seed_layout not in SEED_LAYOUTS:
            bad("mask_seed_layout", f"valid: {list(SEED_LAYOUTS)}")
        if self.mask_seed_layout == "slot_sample" and not spec.per_sample_seeds:
            bad("mask_seed_layout", f"method {self.name!r} draws every MC sample from one seed; use rollout or slot")
        if self.rng_mode not in RNG_MODES:
            bad("rng_mode", f"valid: {list(RNG_MODES)}")
        if self.loss_norm not in LOSS_NORMS:
            bad("loss_norm", f"valid: {list(LOSS_NORMS)}")
        for flag in ("include_later_blocks_in_bounds", "eubo_drop_unmasked_tokens", "eubo_drop_underflow",
                     "use_mask_prompt", "rollout_train_mode"):
            if not isinstance(getattr(self, flag), bool):
                bad(flag, "must be true or false")
        for field, why in spec.check(self):
            bad(field, why)

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length
