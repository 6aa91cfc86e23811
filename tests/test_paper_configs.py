"""configs/paper/*.yaml: the paper's LLaDA-8B-Instruct runs, one file per task (docs/algorithms.md#tasks-and-rewards,
docs/algorithms.md#evaluation-protocol, docs/algorithms.md#reported-results,
docs/algorithms.md#official-hyper-parameters).

Each file must be a drop-in params.yaml (same sections, every key dvc.yaml interpolates), load through the loaders
the CLI and the DVC stages use, survive every `spg` command of dvc.yaml up to the point where real work would start,
and carry the paper's / official SPG code's values for its task.
"""

from __future__ import annotations

import re
import shlex
import shutil
import types
from pathlib import Path

import pytest
import yaml

from spg_lib.config import from_dict, load_config
from spg_lib.pipeline.base_model import BaseModelConfig
from spg_lib.pipeline.config import load_pipeline_config
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.tasks.registry import get_task
from spg_lib.training.config import TrainConfig
from spg_lib.training.run import SFTRunConfig

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"
TASKS = ("gsm8k", "math500", "countdown", "sudoku")
WORLD = 8  # the paper's 8 GPUs (docs/algorithms.md#official-hyper-parameters)

# per-task values: temperature docs/algorithms.md#tasks-and-rewards; EUBO β
# docs/algorithms.md#official-hyper-parameters; max_steps
# docs/algorithms.md#evaluation-protocol/docs/algorithms.md#official-hyper-parameters; grad_accum, per-GPU micro-batch
# and
# max_prompt_length docs/algorithms.md#official-hyper-parameters
PER_TASK = {
    "gsm8k": {"temperature": 0.9, "eubo_beta": 1.5, "max_steps": 6000, "grad_accum": 2, "micro_batch": 6,
              "max_prompt_length": 200},
    "math500": {"temperature": 0.9, "eubo_beta": 1.5, "max_steps": 4000, "grad_accum": 2, "micro_batch": 6,
                "max_prompt_length": 200},
    "countdown": {"temperature": 0.9, "eubo_beta": 1.5, "max_steps": 6000, "grad_accum": 2, "micro_batch": 6,
                  "max_prompt_length": 200},
    "sudoku": {"temperature": 0.3, "eubo_beta": 1.0, "max_steps": 2500, "grad_accum": 4, "micro_batch": 3,
               "max_prompt_length": 1500},
}


def _path(task: str) -> Path:
    return PAPER / f"{task}.yaml"


def _doc(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _eval_config(section: dict, **flags) -> EvalConfig:
    """The evaluate section as `spg evaluate --config F --model M --out-dir O` builds it (flags win)."""
    return from_dict(EvalConfig, {**section, "model": "runs/base/model", "out_dir": "runs/eval/base", **flags})


def _lookup(doc: dict, dotted: str):
    node = doc
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"no key {dotted!r}"
        node = node[part]
    return node


def _render(cmd: str, doc: dict) -> str:
    """DVC's ${a.b} interpolation from the params file; a missing or null key is what `dvc repro` would choke on."""
    def value(m: re.Match) -> str:
        v = _lookup(doc, m.group(1))
        assert v is not None and not isinstance(v, dict | list), f"${{{m.group(1)}}} must be a scalar, got {v!r}"
        return str(v)

    return re.sub(r"\$\{([^}]+)\}", value, cmd)


def test_one_file_per_task():
    assert sorted(p.stem for p in PAPER.glob("*.yaml")) == sorted(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_schema_is_params_yaml(task):
    params, doc = _doc(ROOT / "params.yaml"), _doc(_path(task))
    assert list(doc) == list(params)  # same sections, same order
    for section in ("data", "base_model", "register"):  # the same keys set explicitly as the default run's
        assert set(doc[section]) == set(params[section]), section
    load_pipeline_config(_path(task))  # every section is a dataclass: unknown keys are errors


@pytest.mark.parametrize("task", TASKS)
def test_sections_load_through_the_project_loaders(task):
    path, doc = _path(task), _doc(_path(task))
    train = load_config(TrainConfig, path, section="train")
    sft = load_config(SFTRunConfig, path, section="sft")
    base = load_config(BaseModelConfig, path, section="base_model")
    ev = _eval_config(doc["evaluate"])
    train.check_world(WORLD)  # 96 completions split over 8 GPUs × grad_accum micro-batches
    assert train.rows_per_step // (WORLD * train.grad_accum) == PER_TASK[task]["micro_batch"]

    # one task, one data directory, the base_model output feeding train: the wiring dvc.yaml relies on
    data = doc["data"]
    assert data["task"] == train.task == sft.task == ev.task == task
    assert data["out_dir"] == f"data/{task}"
    assert train.train_data == sft.train_data == f"{data['out_dir']}/train.jsonl"
    assert ev.data == f"{data['out_dir']}/test.jsonl"
    assert train.model == f"{base.out_dir}/model"
    assert isinstance(data["n_train"], int) and isinstance(data["seed"], int)  # --n-train / --seed are ints
    # the test file: the task's own bundled name, a local path (dvc.yaml lists it as a dependency)
    assert Path(data["test_source"]).name == get_task(task).local_files["test"]
    assert Path(data["test_source"]).parent == Path("data/benchmarks")

    # the starting point: LLaDA-8B-Instruct itself, so the sft section is never read
    # (docs/algorithms.md#official-hyper-parameters, docs/algorithms.md#d1-sft)
    from spg_lib.storage.fetch import parse_checkpoint_uri

    assert base.uri == "hf://GSAI-ML/LLaDA-8B-Instruct"
    parse_checkpoint_uri(base.uri)


@pytest.mark.parametrize("task", TASKS)
def test_paper_values(task):
    path, doc = _path(task), _doc(_path(task))
    cfg, want = load_config(TrainConfig, path, section="train"), PER_TASK[task]
    algo, ro, opt, lora = cfg.algo, cfg.rollout, cfg.optim, cfg.lora

    # docs/algorithms.md#official-hyper-parameters shared settings
    assert (opt.lr, opt.beta1, opt.beta2, opt.weight_decay, opt.max_grad_norm) == (3e-6, 0.9, 0.99, 0.1, 0.2)
    assert (lora.enabled, lora.r, lora.alpha, lora.dropout) == (True, 128, 64, 0.05)
    assert (cfg.num_generations, cfg.prompts_per_step, cfg.rows_per_step) == (6, 16, 96)
    assert (cfg.dtype, cfg.prompt_style, cfg.seed) == ("bfloat16", "paper", 42)
    assert (ro.steps, ro.remasking) == (128, "low_confidence")
    # every checkpoint kept for the best-checkpoint selection (docs/algorithms.md#evaluation-protocol)
    assert (cfg.checkpoint_every, cfg.keep_checkpoints * cfg.checkpoint_every) == (100, cfg.max_steps)
    # docs/algorithms.md#official-hyper-parameters SPG w/ Mixture
    assert (algo.name, algo.forward_type, algo.num_mc, algo.min_t, algo.max_t) == ("spg", "block_random", 2, 0.0, 1.0)
    assert (algo.gen_length, algo.block_length, algo.num_iterations) == (256, 32, 4)
    assert (algo.p_mask_prompt, algo.use_mask_prompt) == (0.15, True)
    assert (algo.neg_estimator, algo.mix_weight, algo.kl_beta) == ("mix", 0.5, 0.0)
    # faithful = the official code behind the published numbers (docs/faithful-vs-fixed.md#official-quirks,
    # docs/algorithms.md#official-hyper-parameters faithful defaults)
    assert (algo.mode, cfg.reward_mode, doc["evaluate"]["mode"]) == ("faithful", "faithful", "faithful")
    assert (algo.seed_index_mode, algo.rng_mode, algo.loss_norm) == ("legacy_modulo", "global_reseed",
                                                                     "completion_tokens")
    assert algo.include_later_blocks_in_bounds and algo.eubo_drop_unmasked_tokens
    # per task
    assert ro.temperature == want["temperature"]
    assert algo.eubo_beta == want["eubo_beta"]
    assert cfg.max_steps == want["max_steps"]
    assert cfg.grad_accum == want["grad_accum"]
    assert cfg.max_prompt_length == want["max_prompt_length"]
    # the EUBO variant the header documents (Countdown: β 2.0, docs/algorithms.md#official-hyper-parameters) is a valid
    # override
    eubo = ["algo.neg_estimator=eubo"] + (["algo.eubo_beta=2.0"] if task == "countdown" else [])
    assert load_config(TrainConfig, path, section="train", overrides=eubo).algo.neg_estimator == "eubo"

    # docs/algorithms.md#evaluation-protocol evaluation: greedy, 256 tokens, 128 steps (2 tokens per step), block 32,
    # batch 8, bf16
    ev = _eval_config(doc["evaluate"])
    assert (ev.gen_length, ev.steps, ev.block_length, ev.batch_size) == (256, 128, 32, 8)
    assert (ev.prompt_style, ev.dtype) == ("paper", "bfloat16")
    assert cfg.before_after_eval is False  # the optional before/after table would use this same section
    assert (ev.redecode_earlier_masks, ev.gumbel_dtype) == (True, "float32")  # the official eval sampler
    assert (cfg.rollout.redecode_earlier_masks, cfg.rollout.gumbel_dtype) == (True, "model")  # official rollouts
    for gen_length, steps, batch in ((128, 64, 8), (512, 256, 4)):  # the other two lengths, as the header says
        _eval_config(doc["evaluate"], gen_length=gen_length, steps=steps, batch_size=batch)

    # the training set covers the prompts the run draws: μ optimizer steps per rollout of 16 prompts
    # (docs/algorithms.md#rollout-reuse)
    prompts_drawn = cfg.max_steps // algo.num_iterations * cfg.prompts_per_step
    n_train = doc["data"]["n_train"]
    if task == "gsm8k":
        assert n_train == 7473  # all of openai/gsm8k train (docs/algorithms.md#tasks-and-rewards)
    elif task in ("countdown", "sudoku"):  # generated: exactly one pass
        assert n_train == prompts_drawn


@pytest.mark.parametrize("task", TASKS)
def test_dvc_stages_accept_the_file(task, tmp_path, monkeypatch):
    """`cp configs/paper/<task>.yaml params.yaml && dvc repro`: render every dvc.yaml command with the file and run
    each `spg` command with its heavy back end replaced by a recorder (what the stages would be handed)."""
    import spg_lib.pipeline.base_model as base_model_mod
    import spg_lib.tasks.evaluate as evaluate_mod
    import spg_lib.tasks.prepare as prepare_mod
    import spg_lib.training.run as run_mod
    from spg_lib.cli import build_parser

    shutil.copy(_path(task), tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    doc = _doc(tmp_path / "params.yaml")
    seen: dict[str, list] = {}

    def record(name, result):
        def fake(*args, **kwargs):
            seen.setdefault(name, []).append((args, kwargs))
            return result
        return fake

    monkeypatch.setattr(prepare_mod, "prepare_data", record("prepare", {"task": task, "files": {}}))
    monkeypatch.setattr(base_model_mod, "make_base_model",
                        record("base", {"source": "fetch", "model_dir": "runs/base/model", "wall_time_s": 0.0}))
    monkeypatch.setattr(run_mod, "run_train", record("train", {"final_model": None}))
    monkeypatch.setattr(evaluate_mod, "evaluate", record("evaluate", types.SimpleNamespace(as_dict=dict)))

    stages = _doc(ROOT / "dvc.yaml")["stages"]
    for name, stage in stages.items():
        cmds = stage["cmd"] if isinstance(stage["cmd"], list) else [stage["cmd"]]
        for key in ("deps", "outs"):  # paths DVC tracks must render too
            for entry in stage.get(key, []):
                _render(entry if isinstance(entry, str) else next(iter(entry)), doc)
        for cmd in cmds:
            argv = shlex.split(_render(cmd, doc))
            assert argv[0] == "spg", cmd
            args = build_parser(argv[1]).parse_args(argv[1:])
            if argv[1] in ("summarize", "register"):  # read files the earlier stages write: parsing is the check
                continue
            assert args.func(args) == 0, f"stage {name}: {argv}"

    # what each stage would have run with
    (prep_args, prep_kwargs), = seen["prepare"]
    assert prep_args[0].name == task and prep_args[1] == doc["data"]["out_dir"]
    assert prep_kwargs["n_train"] == doc["data"]["n_train"] and prep_kwargs["source"] is None
    assert prep_kwargs["test_source"] == doc["data"]["test_source"]
    (base_args, _), = seen["base"]
    assert base_args[0].uri == "hf://GSAI-ML/LLaDA-8B-Instruct" and base_args[1] is None  # sft never loaded
    (train_args, _), = seen["train"]
    train = train_args[0]
    assert train.before_after_eval is False and train.max_steps == PER_TASK[task]["max_steps"]
    evals = [a[0] for a, _ in seen["evaluate"]]
    assert [e.model for e in evals] == ["runs/base/model", "runs/train/final"]
    assert all((e.task, e.gen_length, e.steps, e.mode) == (task, 256, 128, "faithful") for e in evals)
