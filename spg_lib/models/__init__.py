"""Models: a native LLaDA masked diffusion transformer (official checkpoint layout, no remote code), a tiny config
and character tokenizer for tests / CPU smoke runs, and loading helpers.

Modules:
  configuration_llada  `LLaDAConfig` (official config.json field names; field table in its docstring)
  modeling_llada       `LLaDAModelLM` (official parameter names; name -> module table in its docstring)
  tiny                 `tiny_config`, `init_tiny_model`, `build_tiny_tokenizer`
  loading              `load_model`, `load_tokenizer` ("builtin:tiny", local dir / file:// URI, hub id)
Importing this package registers model_type "llada" with AutoConfig / AutoModel / AutoModelForMaskedLM.

Test: `python -m pytest -q tests/models`.
"""

from spg_lib.models.configuration_llada import LLaDAConfig
from spg_lib.models.loading import load_model, load_tokenizer
from spg_lib.models.modeling_llada import LLaDAModelLM
from spg_lib.models.tiny import build_tiny_tokenizer, init_tiny_model, tiny_config

__all__ = [
    "LLaDAConfig",
    "LLaDAModelLM",
    "build_tiny_tokenizer",
    "init_tiny_model",
    "load_model",
    "load_tokenizer",
    "tiny_config",
]
