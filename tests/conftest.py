"""Suite-wide settings: one intra-op thread per test process (2-core machines: oversubscription makes the
tiny-model tests several times slower), and hypothesis profiles sized for CI."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
