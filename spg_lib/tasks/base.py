"""The `Task` interface shared by GSM8K, MATH500, Countdown and Sudoku.

A task turns raw rows into canonical *examples* (plain JSON-able dicts), builds the training
and evaluation prompts (user-message content; the chat template is applied by the caller) in
both prompt styles, writes its SFT demonstrations (and the systematic teacher defects it knows),
exposes its reward functions with their weights (docs/algorithms.md#tasks-and-rewards) and scores evaluation
completions (docs/algorithms.md#evaluation-protocol). Nothing outside ``spg_lib.tasks`` needs to know a task by name: a
task
registered by a plugin gets every feature by implementing these methods.

Prompt styles: ``"paper"`` (the official prompts: system text, few-shot examples) and
``"compact"`` (short prompts for tiny character-level models trained in minutes on CPU; the
completion keeps the ``<answer>…</answer>`` format, so rewards and scorers apply unchanged).

Two modes run through rewards and scoring:
  * ``"faithful"`` reproduces the official SPG/d1 code, quirks included (docs/faithful-vs-fixed.md#official-quirks
  Q9–Q16);
  * ``"fixed"`` (default) corrects those defects.

Reward functions are pure: ``fn(completion: str, **ground_truth_fields) -> float``; they ignore
keyword arguments they do not use, never raise on any text, and run in bounded time.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from spg_lib.tasks.io import DataError, load_source

__all__ = ["MODES", "NO_DEFECT", "PROMPT_STYLES", "Mode", "PromptStyle", "RewardFn", "ScoreResult", "Task",
           "check_mode", "check_prompt_style"]

Mode = Literal["faithful", "fixed"]
MODES: tuple[str, ...] = typing.get_args(Mode)
# paper: the official training / evaluation prompts; compact: the task's short prompts for tiny models
PromptStyle = Literal["paper", "compact"]
PROMPT_STYLES: tuple[str, ...] = typing.get_args(PromptStyle)
NO_DEFECT = "none"  # the teacher-defect name every task accepts: demonstrations left as they are


def check_mode(mode: str) -> Mode:
    """Return `mode` if valid, else raise ValueError listing the valid modes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


def check_prompt_style(style: str, field: str = "prompt_style") -> PromptStyle:
    """Return `style` if valid, else raise ValueError naming `field` and the valid styles."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"{field} must be one of {', '.join(PROMPT_STYLES)}; got {style!r}")
    return style  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class RewardFn:
    """One additive reward component: ``weight * fn(completion, **fields)``."""

    name: str
    fn: Callable[..., float]
    weight: float = 1.0

    def __call__(self, completion: str, **fields: Any) -> float:
        return self.weight * float(self.fn(completion, **fields))


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """Score of one completion.

    `correct` / `total` are the numerator / denominator this example adds to the benchmark
    accuracy: 1/1 or 0/1 for exact-answer tasks; correct empty cells / empty cells for Sudoku
    (micro-averaged cell accuracy, docs/algorithms.md#evaluation-protocol).
    """

    extracted: Any
    correct: float
    total: float

    @property
    def is_correct(self) -> bool:
        return self.total > 0 and self.correct == self.total


class Task(abc.ABC):
    """Base class of a task; subclasses are registered by `name` in `spg_lib.tasks.registry`."""

    name: ClassVar[str]
    #: default sources per split (hub id, or a file name looked up under $SPG_DATA_DIR)
    default_sources: ClassVar[Mapping[str, str]] = {}
    #: file names of the bundled copies, looked up under $SPG_DATA_DIR when no source is given
    local_files: ClassVar[Mapping[str, str]] = {}
    #: hub config passed with hub ids (e.g. "main" for openai/gsm8k)
    hub_config: ClassVar[str | None] = None
    #: example fields handed to reward functions as keyword arguments
    reward_fields: ClassVar[tuple[str, ...]] = ()

    # -- data ------------------------------------------------------------------------------
    @abc.abstractmethod
    def normalise(self, row: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Canonical example from a raw row (official or prepared layout).

        Raises:
            DataError: a field is missing or has the wrong type; the message starts with `where`.
        """

    def default_source(self, split: str) -> str:
        """Where `split` comes from when the user names no source.

        ``$SPG_DATA_DIR/<local file>`` if that file exists, else the official hub id.

        Raises:
            ValueError: the split has neither (e.g. the Countdown/Sudoku test files, which live
                in the authors' repositories, not on the hub).
        """
        data_dir = os.environ.get("SPG_DATA_DIR")
        if data_dir and split in self.local_files:
            candidate = Path(data_dir) / self.local_files[split]
            if candidate.is_file():
                return str(candidate)
        if split in self.default_sources:
            return self.default_sources[split]
        hint = f" (e.g. {self.local_files[split]})" if split in self.local_files else ""
        raise ValueError(
            f"task {self.name!r} has no default source for split {split!r}: pass a local path{hint} "
            "or s3:// URI, or set SPG_DATA_DIR to a directory holding the bundled files"
        )

    def load_split(self, source: str, split: str) -> list[dict[str, Any]]:
        """Load and normalise every row of `split` from `source` (path, s3:// or hub id)."""
        table = load_source(source, split=split, config=self.hub_config)
        return [self.normalise(row, where) for where, row in table]

    # -- prompts ---------------------------------------------------------------------------
    @abc.abstractmethod
    def question(self, example: Mapping[str, Any]) -> str:
        """Short question text stored with each generation."""

    @abc.abstractmethod
    def train_prompt(self, example: Mapping[str, Any]) -> str:
        """User-message content for RL training (no assistant prefill)."""

    @abc.abstractmethod
    def eval_prompt(self, example: Mapping[str, Any]) -> str:
        """User-message content for evaluation (the caller prefills ``<reasoning>``)."""

    def compact_prompt(self, example: Mapping[str, Any]) -> str:
        """User-message content in the compact style (the same for training and evaluation).

        Raises:
            ValueError: this task defines none (the default).
        """
        raise ValueError(f"task {self.name!r} has no compact prompt (Task.compact_prompt): use prompt_style paper")

    def prompt(self, example: Mapping[str, Any], style: str = "paper", *, evaluation: bool = False) -> str:
        """User-message content in `style`: compact, or the paper's training / evaluation variant."""
        if check_prompt_style(style) == "compact":
            return self.compact_prompt(example)
        return self.eval_prompt(example) if evaluation else self.train_prompt(example)

    # -- SFT demonstrations ----------------------------------------------------------------
    #: systematic teacher defects this task can inject into SFT demonstrations (besides ``"none"``)
    teacher_defects: ClassVar[tuple[str, ...]] = ()

    def sft_response(self, example: Mapping[str, Any]) -> str:
        """The SFT target completion (before EOS) for `example`; needs its gold solution fields.

        Raises:
            ValueError: this task defines none (the default), or `example` lacks a solution.
        """
        raise ValueError(f"task {self.name!r} has no SFT target (Task.sft_response)")

    def with_teacher_defect(self, example: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """A copy of `example` whose SFT demonstration carries the defect `kind` (one of `teacher_defects`).

        Raises:
            ValueError: `kind` is not a defect of this task (the message lists the valid ones).
        """
        raise ValueError(f"teacher defect {kind!r} is not defined for task {self.name!r} "
                         f"(valid: {[NO_DEFECT, *self.teacher_defects]})")

    # -- rewards ---------------------------------------------------------------------------
    @abc.abstractmethod
    def reward_functions(self, mode: str = "fixed") -> tuple[RewardFn, ...]:
        """The additive reward components of this task in `mode`."""

    def reward_kwargs(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Ground-truth keyword arguments the reward functions receive for `example`."""
        return {k: example[k] for k in self.reward_fields}

    def total_reward(self, completion: str, example: Mapping[str, Any], mode: str = "fixed") -> float:
        """Weighted sum of all reward components for one completion."""
        kwargs = self.reward_kwargs(example)
        return sum(r(completion, **kwargs) for r in self.reward_functions(mode))

    # -- evaluation ------------------------------------------------------------------------
    @abc.abstractmethod
    def ground_truth(self, example: Mapping[str, Any]) -> Any:
        """JSON value written as ``ground_truth`` in generations.jsonl."""

    @abc.abstractmethod
    def check_ground_truth(self, value: Any, where: str) -> Any:
        """Validate a ``ground_truth`` read from a generations file (DataError naming `where`)."""

    @abc.abstractmethod
    def score(self, completion: str, ground_truth: Any, mode: str = "fixed") -> ScoreResult:
        """Score one evaluation completion against its ground truth (docs/algorithms.md#evaluation-protocol)."""


def require(row: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``row[key]`` checked for presence and type; DataError naming `where` otherwise."""
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r} (have: {', '.join(map(str, row)) or 'none'})")
    value = row[key]
    if not isinstance(value, types) or isinstance(value, bool):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise DataError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}")
    return value
