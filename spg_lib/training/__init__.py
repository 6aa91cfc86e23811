"""Training: the masked-diffusion SFT bootstrap (d1 SFT) and, later, the RL trainer."""

from spg_lib.training.sft import SFTConfig, sft_loss, sft_mask, train_sft

__all__ = ["SFTConfig", "sft_loss", "sft_mask", "train_sft"]
