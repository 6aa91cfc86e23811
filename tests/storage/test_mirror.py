"""CheckpointMirror against a loopback S3 (moto): upload of committed checkpoints (meta.json last), restore of the
latest complete one on a fresh machine, remote pruning, and interrupted uploads never restored."""

import uuid

from spg_lib.storage import make_client
from spg_lib.storage.mirror import CheckpointMirror


def _step(root, n, payload=b"w"):
    d = root / f"step-{n}"
    (d / "accelerate").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(payload * 100)
    (d / "accelerate" / "shard.bin").write_bytes(payload)
    (d / "meta.json").write_text(f'{{"step": {n}}}')
    return d


def _client(moto_server):
    return make_client(moto_server.endpoint_url, access_key=moto_server.access_key,
                       secret_key=moto_server.secret_key, region=moto_server.region)


def test_sync_restore_prune(moto_server, tmp_path):
    bucket = moto_server.make_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    remote = f"s3://{bucket}/runs/job-1/train/checkpoints"
    client = _client(moto_server)
    local = tmp_path / "a" / "checkpoints"
    (local / "step-9.tmp").mkdir(parents=True)  # a staging dir is never uploaded
    _step(local, 2, b"a")
    mirror = CheckpointMirror(local, remote, client=client, keep=2, interval_s=0.05)
    with mirror:
        _step(local, 4, b"b")
    assert mirror.remote_steps() == [2, 4]
    _step(local, 6, b"c")
    assert mirror.sync() == [6]
    assert mirror.sync() == []  # nothing new
    assert mirror.remote_steps() == [4, 6]  # pruned to keep=2
    keys = {o.key for o in client.list_objects(bucket, "runs/job-1")}
    assert "runs/job-1/train/checkpoints/step-6/accelerate/shard.bin" in keys
    assert not any("step-9" in k or "step-2/" in k for k in keys)

    fresh = tmp_path / "b" / "checkpoints"  # a retried pod on another node
    restorer = CheckpointMirror(fresh, remote, client=client)
    assert restorer.restore() == 6
    assert (fresh / "step-6" / "model.safetensors").read_bytes() == b"c" * 100
    assert (fresh / "step-6" / "accelerate" / "shard.bin").read_bytes() == b"c"
    assert restorer.sync() == []  # the restored checkpoint is not uploaded again


def test_incomplete_remote_checkpoint_is_not_restored(moto_server, tmp_path):
    bucket = moto_server.make_bucket(f"ckpt-{uuid.uuid4().hex[:8]}")
    client = _client(moto_server)
    prefix = "runs/job-2/train/checkpoints"
    client.raw.put_object(Bucket=bucket, Key=f"{prefix}/step-3/model.safetensors", Body=b"x")  # no meta.json
    mirror = CheckpointMirror(tmp_path / "c", f"s3://{bucket}/{prefix}", client=client)
    assert mirror.remote_steps() == []
    assert mirror.restore() is None
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
