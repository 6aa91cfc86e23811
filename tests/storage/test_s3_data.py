"""Task data from s3:// through `datasets` + s3fs, configured like the project's S3 client (SeaweedFS on loopback)."""

import pytest

from spg_lib.tasks import DataError, get_task
from spg_lib.tasks.io import load_source, read_table


@pytest.fixture
def remote_files_allowed(monkeypatch):
    """tests/conftest.py puts `datasets` offline, which also refuses s3:// files; here they are on loopback (the hub
    stays offline: huggingface_hub has its own switch)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)


def test_s3_data_through_datasets(s3_env, remote_files_allowed, bucket_name, tmp_path):
    s3_env.make_bucket(bucket_name)
    client = s3_env.client()
    jsonl = '{"question": "q1", "answer": "#### 1"}\n\n{"question": "q2", "answer": "#### 2"}\n'
    client.put_object(Bucket=bucket_name, Key="gsm8k/train.jsonl", Body=jsonl.encode())
    client.put_object(Bucket=bucket_name, Key="sudoku/test.csv", Body=b"Puzzle,Solution\n0310200404001043,"
                      b"4312213434211243\n")
    uri = f"s3://{bucket_name}/gsm8k/train.jsonl"
    table = load_source(uri, split="train")
    assert [r["question"] for r in table.rows] == ["q1", "q2"]
    assert table.locations == [f"{uri}:1", f"{uri}:3"]
    (tmp_path / "same.jsonl").write_text(jsonl)
    assert table.fingerprint == read_table(tmp_path / "same.jsonl").fingerprint  # content, not location
    assert load_source(f"s3://{bucket_name}/sudoku/test.csv", split="test").rows[0]["Puzzle"] == "0310200404001043"
    # row-numbered validation errors name the s3:// object and line
    client.put_object(Bucket=bucket_name, Key="gsm8k/bad.jsonl", Body=b'{"question": "q", "answer": "#### 1"}\n'
                      b'{"question": "q2"}\n')
    with pytest.raises(DataError, match=rf"s3://{bucket_name}/gsm8k/bad\.jsonl:2: missing field 'answer'"):
        get_task("gsm8k").load_split(f"s3://{bucket_name}/gsm8k/bad.jsonl", "train")
    with pytest.raises(DataError, match=rf"s3://{bucket_name}/gsm8k/none\.jsonl"):
        load_source(f"s3://{bucket_name}/gsm8k/none.jsonl", split="train")
