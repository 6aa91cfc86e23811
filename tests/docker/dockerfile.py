"""A small Dockerfile reader for the image tests: instructions per build stage, and the install-command check.

`parse` joins continuation lines (dropping the comment lines Docker drops inside them) and returns the
instructions with their stage; `install_errors` says, for every ``pip install`` / ``uv pip install`` in a RUN,
why it could install something that is not pinned (empty: every package comes from a pinned requirements file,
an exact ``name==version`` with ``--no-deps``, or the project itself with ``--no-deps``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable

__all__ = ["Instruction", "Stage", "install_errors", "parse", "substitute"]

_SEPARATORS = re.compile(r"\s*(?:&&|\|\||;|\|)\s*")
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==\d[A-Za-z0-9.+!_-]*$")  # PEP 440: a digit first


@dataclasses.dataclass
class Instruction:
    keyword: str        # upper case: FROM, RUN, COPY, ...
    args: str           # the rest, continuation lines joined with spaces
    line: int           # 1-based line of the keyword


@dataclasses.dataclass
class Stage:
    base: str                                   # FROM's image, ARGs of the global scope substituted
    name: str | None
    instructions: list[Instruction] = dataclasses.field(default_factory=list)
    args: dict[str, str] = dataclasses.field(default_factory=dict)  # ARGs in scope: global ones redeclared here


def substitute(text: str, args: dict[str, str]) -> str:
    """``${NAME}`` / ``$NAME`` replaced by the ARG defaults in ``args`` (unknown names stay as they are)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of Dockerfile ``text``.

    A stage's ``args`` are the ARGs it declares: ``ARG NAME`` takes the global default, ``ARG NAME=value`` its own.
    """
    instructions: list[Instruction] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if not current:
            start = number
        continued = line.endswith("\\")
        current.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, rest = " ".join(p for p in current if p).partition(" ")
            instructions.append(Instruction(keyword.upper(), rest.strip(), start))
            current = []
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "ARG":
            name, eq, default = ins.args.partition("=")
            name = name.strip()
            if not stages:
                global_args[name] = default.strip().strip('"')
            else:
                stages[-1].args[name] = default.strip().strip('"') if eq else global_args.get(name, "")
        elif ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(substitute(words[0], global_args), name))
        elif stages:
            stages[-1].instructions.append(ins)
    return global_args, stages


def _copies(stage: Stage) -> dict[str, str]:
    """Destination path -> source of the plain (build-context) COPY instructions of ``stage``."""
    out: dict[str, str] = {}
    for ins in stage.instructions:
        if ins.keyword != "COPY" or "--from" in ins.args:
            continue
        words = [w for w in ins.args.split() if not w.startswith("--")]
        *sources, dest = words
        for src in sources:
            out[dest.rstrip("/") + "/" + src.rsplit("/", 1)[-1] if dest.endswith("/") else dest] = src
    return out


def install_errors(text: str, pinned_file: Callable[[str], bool], args: dict[str, str] | None = None) -> list[str]:
    """Why each install command of Dockerfile ``text`` might install an unpinned package (empty: none does).

    ``pinned_file(path)`` says whether a build-context file (as a COPY names it) is a fully pinned requirements
    file. A ``-r`` file must have been COPYed from such a file in the same stage, or written earlier in the same
    RUN by ``sed '/^NAME==/d' SRC > DST`` from one (a subset of its lines). ``args`` overrides ARG defaults.
    """
    _, stages = parse(text)
    errors: list[str] = []
    for stage in stages:
        values = {**stage.args, **(args or {})}
        copies = _copies(stage)
        for ins in stage.instructions:
            if ins.keyword != "RUN":
                continue
            derived: set[str] = set()
            for command in _SEPARATORS.split(ins.args):
                try:
                    words = shlex.split(command)
                except ValueError as exc:
                    errors.append(f"line {ins.line}: cannot split {command!r}: {exc}")
                    continue
                if words[:1] == ["sed"] and len(words) == 5 and words[3] == ">" and re.fullmatch(
                        r"/\^[A-Za-z0-9._-]+==/d", words[1]):
                    if words[2] in derived or pinned_file(copies.get(words[2], "")):
                        derived.add(words[4])
                    continue
                if "pip" in words and words[words.index("pip") + 1:words.index("pip") + 2] == ["install"]:
                    where = f"line {ins.line}: {' '.join(words)!r}"
                    rest = [substitute(w, values) for w in words[words.index("pip") + 2:]]
                    errors += [f"{where}: {e}" for e in _check_install(rest, copies, derived, pinned_file)]
                elif re.search(r"\b(pip3?|easy_install|uv (add|sync|tool install))\b", command):
                    errors.append(f"line {ins.line}: {command!r}: a package installer outside `pip install`")
    return errors


def _check_install(words: list[str], copies: dict[str, str], derived: set[str],
                   pinned_file: Callable[[str], bool]) -> list[str]:
    valued = {"--python", "--index-url", "--no-build-isolation-package", "-r", "--requirement", "-e", "--editable"}
    flags = {"--no-deps", "--no-build-isolation"}
    errors: list[str] = []
    no_deps = "--no-deps" in words
    i = 0
    while i < len(words):
        word = words[i]
        option, eq, inline = word.partition("=")
        if option in valued:
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else "")
            i += 1 if eq else 2
            if option in ("-r", "--requirement") and value not in derived and not pinned_file(copies.get(value, "")):
                errors.append(f"-r {value}: not a pinned requirements file copied into this stage")
            if option in ("-e", "--editable") and (value != "." or not no_deps):
                errors.append(f"-e {value}: only the project itself ('.'), with --no-deps")
            continue
        i += 1
        if word in flags:
            continue
        if word.startswith("-"):
            errors.append(f"option {word}: not one the pinned-install rules allow")
        elif not _PIN.match(word):
            errors.append(f"{word}: not an exact name==version pin")
        elif not no_deps:
            errors.append(f"{word}: an exact pin still resolves its dependencies freely without --no-deps")
    return errors
