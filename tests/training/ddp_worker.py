"""Worker for the 2-process tests: trains the toy task and saves the final trainable weights per rank.

    torchrun --nproc_per_node 2 tests/training/ddp_worker.py OUT_DIR GRAD_ACCUM [resume]

``resume``: LoRA with dropout and a different global seed per rank; one run goes straight to step 3, another
stops at step 1 (mid-rollout, μ = 2) and a fresh trainer resumes it to step 3; both weight sets are saved.
"""

import sys

import torch
from accelerate import Accelerator
from safetensors.torch import save_file

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.config import LoRASettings
from spg_lib.training.run import wrap_lora
from spg_lib.training.trainer import Trainer
from tests.training.helpers import EXAMPLES, OnesTask, small_config


def trained(acc, cfg, resume=False):
    tr = Trainer(cfg, wrap_lora(init_tiny_model(seed=0), cfg.lora), build_tiny_tokenizer(), EXAMPLES, OnesTask(),
                 accelerator=acc)
    tr.train(resume=resume, progress=False)
    model = acc.unwrap_model(tr.model)
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad or not cfg.lora.enabled}


out_dir, grad_accum = sys.argv[1], int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else "plain"
torch.set_num_threads(1)
acc = Accelerator(cpu=True)
tag = f"rank{acc.process_index}_of_{acc.num_processes}"
if mode == "plain":
    cfg = small_config("spg-mix", out_dir=out_dir, grad_accum=grad_accum, max_steps=3)
    save_file(trained(acc, cfg), f"{out_dir}/{tag}.safetensors")
else:
    lora = LoRASettings(enabled=True, r=4, alpha=8, dropout=0.2)
    torch.manual_seed(100 + acc.process_index)  # dropout masks differ per rank: each must get its own RNG back
    straight = trained(acc, small_config("spg-mix", out_dir=f"{out_dir}/straight", grad_accum=grad_accum,
                                         max_steps=3, lora=lora))
    torch.manual_seed(100 + acc.process_index)
    trained(acc, small_config("spg-mix", out_dir=f"{out_dir}/cut", grad_accum=grad_accum, max_steps=1, lora=lora))
    torch.manual_seed(12345)  # whatever the global RNG holds now, the checkpoint's states replace it
    resumed = trained(acc, small_config("spg-mix", out_dir=f"{out_dir}/cut", grad_accum=grad_accum, max_steps=3,
                                        lora=lora), resume=True)
    save_file(straight, f"{out_dir}/{tag}_straight.safetensors")
    save_file(resumed, f"{out_dir}/{tag}_resumed.safetensors")
