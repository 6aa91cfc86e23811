"""RL algorithms for masked diffusion LMs: forward processes, likelihood bounds, objectives, advantages, methods.

    from spg_lib.algos import AlgoConfig, METHODS, forward_process, elbo_estimate, get_objective

Modules: ``masking`` (SPG, UniGRPO and ESPO forward processes; mask seeds), ``likelihood`` (chunked target
log-probs; ELBO / EUBO / Mixture / one-step / masked-mean / coupled ELBO estimators), ``objectives`` (spg,
d1, wd1, unigrpo, espo losses), ``advantages`` (group_center, leave_one_out, group_zscore), ``methods``
(one registered ``MethodSpec`` per method: estimator, loss, needs, seed policy), ``registry`` (name
lookups), ``config`` (``AlgoConfig`` with faithful/fixed modes). Formulas: docs/algorithms.md.
Everything here is model-free: a model's log-probs come in as a callable.
"""

from spg_lib.algos.advantages import compute_advantages, group_center, group_zscore, leave_one_out
from spg_lib.algos.config import AlgoConfig
from spg_lib.algos.likelihood import (
    elbo_estimate,
    empirical_ratio,
    espo_coupled_elbo,
    eubo_estimate,
    eubo_token_terms,
    masked_token_mean,
    mixture_estimate,
    one_step_token_logp,
    target_logprobs_from_hidden,
    target_logprobs_from_logits,
)
from spg_lib.algos.masking import (
    NoisyBatch,
    bound_mask,
    draw_mask_seeds,
    forward_espo,
    forward_process,
    forward_structured,
    mask_generator,
    mask_seed_index,
    structured_mask_ratio,
)
from spg_lib.algos.methods import Estimate, MethodSpec, MicroBatch, SeedPolicy, get_method, register_method
from spg_lib.algos.objectives import d1_loss, espo_loss, k3_kl, spg_loss, unigrpo_loss, wd1_loss
from spg_lib.algos.registry import (
    ADVANTAGES,
    FORWARD_PROCESSES,
    METHODS,
    NEG_ESTIMATORS,
    OBJECTIVES,
    Registry,
    get_advantage,
    get_forward_process,
    get_neg_estimator,
    get_objective,
)

__all__ = [
    "ADVANTAGES",
    "FORWARD_PROCESSES",
    "METHODS",
    "NEG_ESTIMATORS",
    "OBJECTIVES",
    "AlgoConfig",
    "Estimate",
    "MethodSpec",
    "MicroBatch",
    "NoisyBatch",
    "Registry",
    "SeedPolicy",
    "bound_mask",
    "compute_advantages",
    "d1_loss",
    "draw_mask_seeds",
    "elbo_estimate",
    "empirical_ratio",
    "espo_coupled_elbo",
    "espo_loss",
    "eubo_estimate",
    "eubo_token_terms",
    "forward_espo",
    "forward_process",
    "forward_structured",
    "get_advantage",
    "get_forward_process",
    "get_method",
    "get_neg_estimator",
    "get_objective",
    "group_center",
    "group_zscore",
    "k3_kl",
    "leave_one_out",
    "mask_generator",
    "mask_seed_index",
    "masked_token_mean",
    "mixture_estimate",
    "one_step_token_logp",
    "register_method",
    "spg_loss",
    "structured_mask_ratio",
    "target_logprobs_from_hidden",
    "target_logprobs_from_logits",
    "unigrpo_loss",
    "wd1_loss",
]
