"""Worker for the 2-process test: trains the toy task and saves the final trainable weights per rank.

    torchrun --nproc_per_node 2 tests/training/ddp_worker.py OUT_DIR GRAD_ACCUM
"""

import sys

import torch
from accelerate import Accelerator
from safetensors.torch import save_file

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.trainer import Trainer
from tests.training.helpers import EXAMPLES, OnesTask, small_config

out_dir, grad_accum = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
acc = Accelerator(cpu=True)
cfg = small_config("spg-mix", out_dir=out_dir, grad_accum=grad_accum, max_steps=3)
tr = Trainer(cfg, init_tiny_model(seed=0), build_tiny_tokenizer(), EXAMPLES, OnesTask(), accelerator=acc)
tr.train(progress=False)
model = acc.unwrap_model(tr.model)
save_file({n: p.detach().contiguous() for n, p in model.named_parameters()},
          f"{out_dir}/rank{acc.process_index}_of_{acc.num_processes}.safetensors")
