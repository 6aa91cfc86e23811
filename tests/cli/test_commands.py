"""Every `spg` command: bad input is one line on stderr naming the file, field or argument, exit code 2."""

from __future__ import annotations

import pytest

from spg_lib.cli import COMMANDS, main

# command -> (section its flags belong to, extra arguments it needs to get as far as reading its inputs)
CONFIG_COMMANDS = {
    "prepare-data": [],
    "base-model": [],
    "sft": [],
    "train": [],
    "evaluate": [],
    "summarize": [],
    "register": [],
    "score": ["--generations", "g.jsonl"],
    "fetch-checkpoint": ["--out", "o"],
}


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def test_every_command_is_covered():
    assert set(CONFIG_COMMANDS) | {"bench", "kfp"} == set(COMMANDS)  # bench: shapes only; kfp: tests/kubeflow


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_missing_config_file(command, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    rc, err = _run(capsys, command, "--config", str(missing), *CONFIG_COMMANDS[command])
    assert rc == 2 and len(err) == 1, err
    assert err[0] == f"spg {command}: error: config file {missing} does not exist"


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_bad_field(command, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  optim:\n    lr: fast\n")
    rc, err = _run(capsys, command, "--config", str(params), *CONFIG_COMMANDS[command])
    assert rc == 2 and len(err) == 1, err
    assert err[0] == f"spg {command}: error: {params}: train.optim.lr: expected a number, got 'fast'"


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_unknown_key_and_section_relative_override(command, capsys):
    rc, err = _run(capsys, command, "-o", "train.optim.lrr=1", *CONFIG_COMMANDS[command])
    assert rc == 2 and len(err) == 1 and "'train.optim.lrr' is not a path of params.yaml" in err[0], err
    rc, err = _run(capsys, command, "-o", "optim.lr=1e-4", *CONFIG_COMMANDS[command])
    assert rc == 2 and len(err) == 1, err
    assert "'optim.lr' is not a path of params.yaml; did you mean train.optim.lr?" in err[0]


def test_bad_flag_value_names_the_field(capsys):
    rc, err = _run(capsys, "evaluate", "--gen-length", "long")
    assert (rc, err) == (2, ["spg evaluate: error: defaults: evaluate.gen_length: expected an integer, got 'long'"])
    rc, err = _run(capsys, "evaluate", "--mode", "sloppy")
    assert rc == 2 and len(err) == 1 and "--mode" in err[0] and "'sloppy'" in err[0]


def test_missing_input_files_are_one_line(tmp_path, capsys):
    rc, err = _run(capsys, "score", "--task", "gsm8k", "--generations", str(tmp_path / "none.jsonl"))
    assert rc == 2 and len(err) == 1 and str(tmp_path / "none.jsonl") in err[0]
    rc, err = _run(capsys, "summarize", "--base", str(tmp_path / "b.json"), "--trained", str(tmp_path / "t.json"),
                   "--train-log", str(tmp_path / "l.jsonl"), "--out", str(tmp_path / "m"))
    assert rc == 2 and len(err) == 1 and str(tmp_path / "b.json") in err[0]
    rc, err = _run(capsys, "evaluate", "--model", str(tmp_path / "no-model"), "--out-dir", str(tmp_path / "o"),
                   "--task", "sudoku", "--data", str(tmp_path / "none.csv"))
    assert rc == 2 and len(err) == 1 and str(tmp_path / "none.csv") in err[0]
    rc, err = _run(capsys, "prepare-data", "--task", "sudoku", "--out-dir", str(tmp_path / "d"),
                   "--test-source", str(tmp_path / "none.csv"))
    assert rc == 2 and len(err) == 1 and str(tmp_path / "none.csv") in err[0]


def test_fetch_checkpoint_bad_input(tmp_path, capsys):
    rc, err = _run(capsys, "fetch-checkpoint", "--uri", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert rc == 2 and len(err) == 1 and str(tmp_path / "none") in err[0]
    rc, err = _run(capsys, "fetch-checkpoint", "--uri", "ftp://host/x", "--out", str(tmp_path / "o"))
    assert rc == 2 and len(err) == 1 and "ftp://host/x" in err[0]


def test_bench_bad_argument(capsys):
    rc, err = _run(capsys, "bench", "decode", "--gen-length", "long")
    assert rc == 2 and len(err) == 1 and "--gen-length" in err[0] and "'long'" in err[0]
