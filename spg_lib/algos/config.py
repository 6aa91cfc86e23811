"""``AlgoConfig``: the RL-algorithm settings (algorithms.md §12), with a faithful/fixed mode switch.

    cfg = AlgoConfig()                          # mode "fixed": official defects corrected
    cfg = AlgoConfig.faithful()                 # the official SPG-Mixture GSM8K settings, defects included
    cfg = AlgoConfig.preset("faithful", neg_estimator="eubo", eubo_beta=2.0)

Mode-dependent flags default to ``None`` and are resolved from ``mode`` in ``__post_init__`` (an explicit
value always wins), so ``mode: faithful`` in ``params.yaml`` is enough to reproduce the official code and a
single flag can still be flipped for an ablation. Values that copy the paper/code carry their source in
the help text (§8.2 of the reference = SPG ``slurm_scripts`` / ``train.yaml``).

The config stops at the trainer boundary (style.md §10 rule 7): the trainer unpacks these scalars and calls
the pure functions in ``masking``, ``likelihood`` and ``objectives`` with keywords.

Test: ``pytest tests/algos/test_config.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spg_lib.algos.masking import RNG_MODES, SEED_INDEX_MODES
from spg_lib.algos.objectives import LOSS_NORMS

MODES = ("fixed", "faithful")
FORWARD_TYPES = ("all", "random", "block_all", "block_random")
METHODS = ("spg", "d1", "wd1", "unigrpo", "espo")
NEG_ESTIMATOR_NAMES = ("eubo", "mix", "elbo", "zero")

# mode -> resolved value of each mode-dependent flag
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "faithful": {
        "seed_index_mode": "legacy_modulo",
        "rng_mode": "global_reseed",
        "include_later_blocks_in_bounds": True,
        "eubo_drop_unmasked_tokens": True,
        "loss_norm": "completion_tokens",
    },
    "fixed": {
        "seed_index_mode": "per_iteration",
        "rng_mode": "local_generator",
        # kept True: a modelling choice behind the published numbers, not a defect (§10 item 3)
        "include_later_blocks_in_bounds": True,
        "eubo_drop_unmasked_tokens": False,
        "loss_norm": "max_length",
    },
}


def _f(default: Any, help_text: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class AlgoConfig:
    """RL objective + likelihood-estimator settings. Defaults = faithful SPG-Mixture GSM8K run (§12)."""

    name: str = _f("spg", "objective: spg | d1 | wd1 | unigrpo | espo")
    mode: str = _f("fixed", "fixed (official defects corrected) | faithful (reproduce the official code); "
                            "resolves every flag left at None")
    advantage: str = _f("group_center", "advantage estimator: group_center (SPG/D1: R − mean) | leave_one_out "
                                        "(ESPO) | group_zscore (GRPO)")
    # --- SPG forward process (§2.2) ---
    forward_type: str = _f("block_random", "all | random | block_all | block_random (every SPG run)")
    num_mc: int = _f(2, "m, MC samples per sequence (`num_t`; 2 in every SPG run, §2.3)")
    gen_length: int = _f(256, "L, completion canvas length (max_completion_length 256)")
    block_length: int = _f(32, "K, block size of block masking (= decoding block_length 32)")
    min_t: float = _f(0.0, "lower mask-ratio bound of random/block_random (official 0.0)")
    max_t: float = _f(1.0, "upper mask-ratio bound of random/block_random (official 1.0)")
    p_mask_prompt: float = _f(0.15, "p, prob. of masking prompt and clean earlier-block tokens (YAML 0.15)")
    use_mask_prompt: bool = _f(True, "apply the p-perturbation (True in every run; Table 19 ablates it)")
    # --- SPG bounds (§3–4) ---
    neg_estimator: str = _f("mix", "negative-trace estimator: eubo | mix | elbo | zero (`logp_estimation`)")
    eubo_beta: float = _f(1.5, "Rényi β of the EUBO (1.5; Countdown-EUBO 2.0, Sudoku 1.0; must be > 0, ≥ 1 for a "
                               "valid bound)")
    mix_weight: float = _f(0.5, "ω of Mixture = ω·EUBO + (1−ω)·ELBO (0.5 in all runs)")
    # --- ratio / KL baselines (§5) ---
    kl_beta: float = _f(0.0, "KL coefficient (must be 0 for SPG; D1 0.04, UniGRPO 0.01, ESPO 1e-3..1e-2)")
    clip_eps: float = _f(0.5, "ratio clip ε (D1 0.5, UniGRPO 0.2, ESPO 0.2; unused by SPG/WD1)")
    clip_eps_high: float | None = _f(None, "upper clip ε for ESPO (None → clip_eps)")
    num_iterations: int = _f(4, "μ, inner iterations per rollout (NUM_ITER=4 in every SPG-repo script)")
    unigrpo_num_steps: int = _f(1000, "T of UniGRPO structured noising t_n = ⌊(n−1)/(μ−1)(T−t₁)+t₁⌋")
    # --- faithful-vs-fixed flags (None → from `mode`) ---
    seed_index_mode: str | None = _f(None, "legacy_modulo (faithful: (micro-step counter after increment) mod μ, "
                                           "aliases seeds across micro-batches, §10 item 1) | per_iteration "
                                           "(fixed: inner iteration n uses seed n)")
    rng_mode: str | None = _f(None, "global_reseed (faithful structure: masks a function of the 12-bit seed only, "
                                    "emulated with a local generator — official bit streams are not reproduced, "
                                    "global RNG never touched) | local_generator (fixed: seeded from (seed, "
                                    "rollout, rank), §10 item 2)")
    include_later_blocks_in_bounds: bool | None = _f(None, "True: bounds sum over every masked completion token incl. "
                                                           "later blocks (official, both modes) | False: only the "
                                                           "chosen block and earlier ones (paper prose, §10 item 3)")
    eubo_drop_unmasked_tokens: bool | None = _f(None, "True (faithful): EUBO = mean over tokens masked ≥ 1 time, "
                                                      "×L_c up-weights them by L_c/|U| (§10 item 4) | False (fixed): "
                                                      "paper sum form over those tokens, no L_c/|U| rescaling")
    loss_norm: str | None = _f(None, "completion_tokens (faithful: /Σ L_c of the micro-batch, §10 item 7) | "
                                     "max_length (fixed: /(B·L), paper's 1/g objective up to a constant, "
                                     "independent of micro-batch composition) | sequences (/B)")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"algo.mode must be one of {list(MODES)}, got {self.mode!r}")
        for key, value in MODE_DEFAULTS[self.mode].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        self._validate()

    def _validate(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"algo.{field}: {why} (got {getattr(self, field)!r})")

        if self.name not in METHODS:
            bad("name", f"unknown method; valid: {list(METHODS)}")
        from spg_lib.algos.registry import ADVANTAGES

        if self.advantage not in ADVANTAGES:
            bad("advantage", f"unknown advantage; valid: {ADVANTAGES.names()}")
        if self.forward_type not in FORWARD_TYPES:
            bad("forward_type", f"unknown forward type; valid: {list(FORWARD_TYPES)}")
        if self.neg_estimator not in NEG_ESTIMATOR_NAMES:
            bad("neg_estimator", f"unknown estimator; valid: {list(NEG_ESTIMATOR_NAMES)}")
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
        if self.name == "spg" and self.kl_beta != 0.0:
            bad("kl_beta", "SPG has no KL term and no reference model; set kl_beta 0.0 (§10 item 8)")
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
        if self.rng_mode not in RNG_MODES:
            bad("rng_mode", f"valid: {list(RNG_MODES)}")
        if self.loss_norm not in LOSS_NORMS:
            bad("loss_norm", f"valid: {list(LOSS_NORMS)}")
        for flag in ("include_later_blocks_in_bounds", "eubo_drop_unmasked_tokens", "use_mask_prompt"):
            if not isinstance(getattr(self, flag), bool):
                bad(flag, "must be true or false")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @classmethod
    def preset(cls, mode: str, **overrides: Any) -> AlgoConfig:
        """Config for ``mode`` ("faithful" | "fixed") with every mode flag resolved, then ``overrides``."""
        if mode not in MODES:
            raise ValueError(f"unknown preset {mode!r}; valid: {list(MODES)}")
        return cls(mode=mode, **overrides)

    @classmethod
    def faithful(cls, **overrides: Any) -> AlgoConfig:
        """The official SPG settings (§8, §12): block_random, m=2, K=32, p=0.15, mix, β=1.5, ω=0.5, legacy flags."""
        return cls.preset("faithful", **overrides)

    @classmethod
    def fixed(cls, **overrides: Any) -> AlgoConfig:
        return cls.preset("fixed", **overrides)


def help_text(field: str) -> str:
    """The documented help of an ``AlgoConfig`` field (for CLIs and docs)."""
    for f in dataclasses.fields(AlgoConfig):
        if f.name == field:
            return f.metadata["help"]
    raise ValueError(f"AlgoConfig has no field {field!r}")
