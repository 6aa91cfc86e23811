"""Suite-wide settings: one intra-op thread per test process (2-core machines: oversubscription makes the
tiny-model tests several times slower), the Hugging Face libraries offline with a temporary `datasets` cache, and
hypothesis profiles sized for CI."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Hugging Face `datasets` / hub: no network, and the Arrow cache of the files tests load in a temporary folder
# (set before `datasets` is first imported, which reads them once).
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="spg-test-hf-datasets-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import torch
from hypothesis import HealthCheck, settings

atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

torch.set_num_threads(1)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

# Loopback object-store services (SeaweedFS S3, moto S3, fault-injecting proxy): see tests/services.py.
from tests.services import fault_proxy, moto_server, seaweedfs, seaweedfs_private  # noqa: E402, F401, I001

# A real MLflow tracking server (SQLite backend, artifacts proxied to SeaweedFS): see tests/mlflow_service.py.
from tests.mlflow_service import mlflow_server, mlflow_server_private  # noqa: E402, F401
