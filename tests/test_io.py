"""spg_lib.io: one error type naming file and line, atomic writers that leave nothing half-written, one URI
parser (RFC 8089 file URIs)."""

import json
import os
import stat
from pathlib import Path

import pytest

from spg_lib.io import (
    BUILTIN_TINY,
    InputError,
    MissingInputError,
    URIError,
    atomic_dir,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    parse_uri,
    read_json,
    read_jsonl,
    read_yaml,
    replace_dir,
)

# ------------------------------------------------------------------------------------------------ reading


def test_read_json_errors_name_the_file(tmp_path):
    p = tmp_path / "m.json"
    with pytest.raises(MissingInputError, match=rf"metrics file {p} does not exist \(did its stage run\?\)"):
        read_json(p, what="metrics file", hint="did its stage run?")
    assert issubclass(MissingInputError, FileNotFoundError) and issubclass(InputError, ValueError)
    with pytest.raises(InputError, match=rf"file {tmp_path} is not a file"):
        read_json(tmp_path)
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(InputError, match=rf"{p}: not valid JSON at line 2 column 7"):
        read_json(p)
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match=rf"{p}: expected a JSON object, got list"):
        read_json(p)
    assert read_json(p, expect=list) == [1, 2] and read_json(p, expect=None) == [1, 2]
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match="not UTF-8 text"):
        read_json(p)


def test_read_yaml_and_jsonl(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "p.yaml").write_text("train:\n  lr: 1e-4\n")
    (tmp_path / "log.jsonl").write_text('{"step": 1}\n\n{"step": 2}\n')
    assert read_yaml(tmp_path / "empty.yaml") == {}
    assert read_yaml(tmp_path / "p.yaml") == {"train": {"lr": "1e-4"}}
    assert read_jsonl(tmp_path / "log.jsonl") == [(1, {"step": 1}), (3, {"step": 2})]


@pytest.mark.parametrize(("reader", "text", "message"), [
    (read_yaml, "- a\n- b\n", r"x: expected a mapping at the top level, got list"),
    (read_yaml, "train:\n  lr: [1,\n  x: 2\n", r"x:\d+: not valid YAML"),
    (read_jsonl, '{"step": 1}\n{"step": \n', r"x:2: malformed JSON"),
    (read_jsonl, '{"step": 1}\n[2]\n', r"x:2: expected a JSON object, got list"),
])
def test_read_yaml_and_jsonl_errors_name_file_and_line(tmp_path, reader, text, message):
    (tmp_path / "x").write_text(text)
    with pytest.raises(InputError, match=f"{tmp_path}/{message}"):
        reader(tmp_path / "x")


# ------------------------------------------------------------------------------------------------ writing


def test_atomic_writers_round_trip(tmp_path):
    atomic_write_text(tmp_path / "a" / "t.txt", "héllo\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": "é"}, sort_keys=True)
    assert atomic_write_jsonl(tmp_path / "d.jsonl", ({"i": i} for i in range(3))) == 3
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    assert [row for _, row in read_jsonl(tmp_path / "d.jsonl")] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.jsonl"]
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.jsonl"]


def test_atomic_dir_and_replace_dir(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("crash while saving")
    assert os.listdir(out) == ["old.txt"] and os.listdir(tmp_path) == ["model"]
    with atomic_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.")
        (tmp / "config.json").write_text("{}")
    assert os.listdir(out) == ["config.json"] and os.listdir(tmp_path) == ["model"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "w").write_text("w")
    assert replace_dir(other, out) == out and os.listdir(out) == ["w"] and os.listdir(tmp_path) == ["model"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


# ------------------------------------------------------------------------------------------------ URIs


def test_file_uris_follow_rfc_8089(tmp_path):
    for uri in (f"file://{tmp_path}", f"file://localhost{tmp_path}", f"file:{tmp_path}", f"FILE://LOCALHOST{tmp_path}"):
        u = parse_uri(uri)
        assert (u.scheme, u.path, u.canonical, u.is_plain_path) == ("file", tmp_path, tmp_path.as_uri(), False), uri
    spaced = tmp_path / "a dir"
    assert parse_uri(f"file://{tmp_path}/a%20dir").path == spaced  # percent-decoded
    assert parse_uri(spaced.as_uri()).path == spaced
    for bad, pattern in [("file://server/share/x", "not host 'server'"), ("file:relative/x", "absolute path"),
                         ("file:///x?y=1", "no query")]:
        with pytest.raises(URIError, match=pattern):
            parse_uri(bad)


def test_plain_paths_s3_hf_builtin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    u = parse_uri("runs/base/model")
    assert (u.scheme, u.path, u.is_plain_path) == ("file", tmp_path / "runs/base/model", True)
    assert parse_uri("~/x").path == Path.home() / "x"
    u = parse_uri("s3://bkt/models/tiny/")
    assert (u.scheme, u.bucket, u.key, u.canonical) == ("s3", "bkt", "models/tiny", "s3://bkt/models/tiny")
    assert parse_uri("s3://bkt").canonical == "s3://bkt"
    u = parse_uri("hf://GSAI-ML/LLaDA-8B-Instruct@v1.0")
    assert (u.scheme, u.repo_id, u.revision) == ("hf", "GSAI-ML/LLaDA-8B-Instruct", "v1.0")
    assert parse_uri(BUILTIN_TINY).canonical == "builtin:tiny"
    for bad, pattern in [("", "empty"), ("builtin:huge", "unknown builtin"), ("gs://b/x", "unsupported scheme 'gs'"),
                         ("s3:///x", "s3://bucket/key"), ("hf://org/name@", "hf://org/name"),
                         ("hf://../x", "hf://org/name")]:
        with pytest.raises(URIError, match=pattern):
            parse_uri(bad)
    assert isinstance(URIError("x"), InputError)


def test_models_and_storage_read_file_uris_alike(tmp_path):
    """`file://localhost/abs` was a relative path to load_model and correct to fetch: both parse with parse_uri."""
    from spg_lib.models import load_model
    from spg_lib.models.loading import save_model_dir
    from spg_lib.storage import fetch_checkpoint, parse_checkpoint_uri

    save_model_dir(BUILTIN_TINY, tmp_path / "ckpt")
    uri = f"file://localhost{tmp_path}/ckpt"
    assert parse_checkpoint_uri(uri).path == parse_uri(uri).path == tmp_path / "ckpt"
    assert load_model(uri).config.model_type == "llada"
    assert json.loads((fetch_checkpoint(uri, tmp_path / "copy") / "config.json").read_text())["model_type"] == "llada"
