"""`spg fetch-checkpoint`: materialise a checkpoint directory from a URI (prints the out dir + manifest summary).

    spg fetch-checkpoint --uri builtin:tiny --out runs/ckpt/tiny
    spg fetch-checkpoint --uri s3://models/llada-8b-instruct --out /models/llada --endpoint-url http://seaweedfs:8333
    spg fetch-checkpoint --uri hf://GSAI-ML/LLaDA-8B-Instruct@main --out /models/llada --no-verify-load
    spg fetch-checkpoint --config configs/paper/gsm8k.yaml      # base_model.uri into <base_model.out_dir>/model

URIs: builtin:tiny, file:///path or a local path, s3://bucket/prefix, hf://org/name[@revision]. S3 credentials
and endpoint come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION / AWS_ENDPOINT_URL_S3 (or
--endpoint-url); retries are botocore's (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS). Details: spg_lib/storage/fetch.py.

Output: line 1 the out dir, line 2 a JSON summary (uri, reused, files, total_bytes, created, seconds).
Exit codes: 0 ok; 2 bad URI, missing bucket/key, rejected credentials, unreachable endpoint, not a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spg_lib.cli.options import configure as add_options
from spg_lib.cli.options import load_tree


def configure(p: argparse.ArgumentParser) -> None:
    add_options(p, "base_model", only=("uri",))  # --uri = -o base_model.uri=...
    p.add_argument("--out", default=None, help="destination directory, written atomically (default: "
                                               "<base_model.out_dir>/model)")
    p.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3 / "
                   "$AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--no-verify-load", dest="verify_load", action="store_false",
                   help="only check config.json + weight files, do not load the model")
    p.add_argument("--force", action="store_true", help="replace an existing --out that is not a valid fetch of --uri")


def run(args: argparse.Namespace) -> int:
    from spg_lib.models.loading import load_model, save_model_dir
    from spg_lib.storage import FetchError, S3Error, fetch_checkpoint_result

    cfg = load_tree(args).base_model
    if not cfg.uri:
        raise ValueError("no checkpoint URI: pass --uri (or set base_model.uri in --config)")
    out = args.out or str(Path(cfg.out_dir) / "model")
    try:
        result = fetch_checkpoint_result(cfg.uri, out, endpoint_url=args.endpoint_url, force=args.force,
                                         load_check=load_model if args.verify_load else None,
                                         write_builtin=save_model_dir)
    except (FetchError, S3Error, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line
        print(f"spg fetch-checkpoint: error: {message}", file=sys.stderr)
        return 2
    print(result.path)
    print(json.dumps(result.summary()))
    return 0
