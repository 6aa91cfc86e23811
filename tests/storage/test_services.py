"""The loopback object-store fixtures themselves (tests/services.py): SeaweedFS binds loopback only, enforces
S3 auth, and round-trips objects; moto and the fault proxy work."""

import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.services import listening_sockets


def _bucket() -> str:
    return f"spg-svc-{uuid.uuid4().hex[:12]}"


def test_seaweedfs_listens_on_loopback_only(seaweedfs):
    socks = listening_sockets(seaweedfs.pid)
    assert socks, "weed mini should be listening"
    assert all(addr == "127.0.0.1" for addr, _ in socks), socks
    # every listener is one of the ports we chose explicitly
    assert {port for _, port in socks} <= set(seaweedfs.ports.values()), (socks, seaweedfs.ports)
    assert seaweedfs.ports["s3.port"] in {port for _, port in socks}


def test_seaweedfs_roundtrip_and_auth_enforced(seaweedfs):
    bucket = seaweedfs.make_bucket(_bucket())
    assert seaweedfs.make_bucket(bucket) == bucket  # idempotent
    c = seaweedfs.client()
    c.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert c.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError) as err:
        seaweedfs.client(secret_key="not-the-secret").get_object(Bucket=bucket, Key="a/b.txt")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as err:
        seaweedfs.client(access_key="unknown-key").list_objects_v2(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    env = seaweedfs.env()
    assert env["AWS_ENDPOINT_URL_S3"] == seaweedfs.endpoint_url.rstrip("/")
    assert env["AWS_SECRET_ACCESS_KEY"] == seaweedfs.secret_key


def test_moto_and_fault_proxy(moto_server, fault_proxy):
    bucket = moto_server.make_bucket(_bucket())
    moto_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    proxy = fault_proxy(moto_server.endpoint_url, fail=[503, "reset"])
    client = moto_server.client(endpoint_url=proxy.endpoint_url,
                                config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        client.get_object(Bucket=bucket, Key="k")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    with pytest.raises(BotoCoreError):  # connection closed without an answer
        client.get_object(Bucket=bucket, Key="k")
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert proxy.requests == 3
