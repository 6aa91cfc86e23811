"""spg_lib: Sandwiched Policy Gradient (arXiv:2510.09541) for masked diffusion language models.

Sub-packages, one concept each:
  models/    native LLaDA-architecture masked diffusion transformer, tiny config, tokenizer, loading
  decoding/  block-wise semi-autoregressive low-confidence-remasking sampler (+ plain reference)
  algos/     forward (masking) processes, likelihood bounds (ELBO/EUBO/Mix), objectives by name
  tasks/     GSM8K, MATH500, Countdown, Sudoku: data, prompts, rewards, evaluation, re-scoring
  cli/       the `spg` console script
"""

__version__ = "0.1.0"
