#!/usr/bin/env python3
"""The one Dockerfile reader of this repository (standard library only): the stages of a
Dockerfile, and for each what an image built from it would be configured with.

    python scripts/dockerfile.py PATH    prints the Dockerfile as JSON (below) and exits 0; a
                                         Dockerfile Docker would refuse, or one using what this
                                         reader does not read, is one line on stderr and exit 65
                                         (an unreadable file: exit 66)

scripts/test_k8s.py imports it (its Dockerfile checks); functions/hits/tests/image.rs runs it and
reads the JSON (the image run as its final stage says). The JSON:

    {"path": PATH, "stages": [STAGE, ...]}         the last stage is the image
    STAGE = {
      "image": "rust:1-bookworm", "name": "builder" | null, "platform": "..." | null, "line": 16,
      "instructions": [{"line": 17, "op": "WORKDIR", "args": "/src"}, ...]  (after FROM; ops upper
                      case, continuation lines joined, comments dropped, as Docker reads them)
      "runs": [RUN's arguments, ...],
      "copies": [{"from": "builder" | null, "sources": [...], "dest": "..."}, ...]  (COPY only),
      "user": "65532:65532" | null, "workdir": "/abs" | null,
      "env": [["KEY", "value"], ...]               (in order; a later one wins),
      "expose": ["8000", "53/udp"],
      "entrypoint": [...] | null, "cmd": [...] | null   (the last one's exec form; null: absent
                                                        or shell form, which needs a shell)
      "stopsignal": "SIGTERM" | null,
      "healthcheck": null | {"test": ["CMD", argv...] | ["CMD-SHELL", "command"] | ["NONE"],
                     "interval": s, "timeout": s, "start_period": s, "start_interval": s,
                     "retries": n}   (seconds; Docker's defaults where an option is not given)
    }

What it does not read, it refuses rather than guesses: parser directives other than `syntax`
(`# escape=`), heredocs (`<<EOF`), `$` substitution in ENV, USER, WORKDIR, EXPOSE and
STOPSIGNAL, and a final stage built FROM an earlier stage (whose settings it would inherit).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Docker's HEALTHCHECK defaults (seconds): docker/cli's and moby's container config.
HEALTHCHECK_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "start_period": 0.0, "start_interval": 5.0, "retries": 3}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class DockerfileError(Exception):
    """A Dockerfile that Docker would refuse, or that uses what this reader does not read."""


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts (1-based)
    op: str  # upper case
    args: str  # the rest, continuation lines joined by a space


@dataclass
class Healthcheck:
    test: list[str]  # as Docker stores it: ["CMD", argv...], ["CMD-SHELL", command] or ["NONE"]
    interval: float = HEALTHCHECK_DEFAULTS["interval"]
    timeout: float = HEALTHCHECK_DEFAULTS["timeout"]
    start_period: float = HEALTHCHECK_DEFAULTS["start_period"]
    start_interval: float = HEALTHCHECK_DEFAULTS["start_interval"]
    retries: int = HEALTHCHECK_DEFAULTS["retries"]

    @property
    def argv(self) -> list[str] | None:
        """The command in exec form; None for the shell form (or NONE)."""
        return self.test[1:] if self.test[0] == "CMD" and len(self.test) > 1 else None


@dataclass
class Copy:
    source_stage: str | None  # --from
    sources: list[str]
    dest: str


@dataclass
class Stage:
    image: str
    name: str | None
    platform: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    env: list[tuple[str, str]] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    stopsignal: str | None = None
    healthcheck: Healthcheck | None = None

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image, "name": self.name, "platform": self.platform, "line": self.line,
            "instructions": [{"line": i.line, "op": i.op, "args": i.args} for i in self.instructions],
            "runs": self.runs,
            "copies": [{"from": c.source_stage, "sources": c.sources, "dest": c.dest} for c in self.copies],
            "user": self.user, "workdir": self.workdir, "env": [list(pair) for pair in self.env],
            "expose": self.expose, "entrypoint": self.entrypoint, "cmd": self.cmd, "stopsignal": self.stopsignal,
            "healthcheck": None if self.healthcheck is None else {
                "test": self.healthcheck.test, "interval": self.healthcheck.interval,
                "timeout": self.healthcheck.timeout, "start_period": self.healthcheck.start_period,
                "start_interval": self.healthcheck.start_interval, "retries": self.healthcheck.retries},
        }


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def instructions(self) -> list[Instruction]:
        """Every stage's instructions, FROMs included, in order."""
        return [i for s in self.stages for i in [Instruction(s.line, "FROM", _from_args(s)), *s.instructions]]

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "stages": [s.to_json() for s in self.stages]}


def _from_args(stage: Stage) -> str:
    platform = f"--platform={stage.platform} " if stage.platform else ""
    return f"{platform}{stage.image}" + (f" AS {stage.name}" if stage.name else "")


def instructions(text: str, where: str = "Dockerfile") -> list[Instruction]:
    """The instructions as Docker's parser reads them: a `#` line is a comment (also inside a
    continuation, where it is dropped), a line ending in `\\` continues on the next, an empty
    line inside a continuation is skipped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    directives_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if directives_allowed and not pending:
            directive = re.fullmatch(r"#\s*([A-Za-z]+)\s*=\s*(.*)", line)
            if directive and directive[1].lower() == "syntax":
                continue
            if directive:
                raise DockerfileError(f"{where}:{number}: parser directive {directive[1]!r} is not read here")
            directives_allowed = False
        if line.startswith("#") or not line:
            continue
        if not pending:
            start = number
        continued = line.endswith("\\")
        body = line[:-1].rstrip() if continued else line
        if body:
            pending.append(body)
        if not continued and pending:
            joined = " ".join(pending)
            op, *rest = joined.split(None, 1)
            found.append(Instruction(start, op.upper(), rest[0].strip() if rest else ""))
            pending = []
    if pending:
        raise DockerfileError(f"{where}:{start}: the file ends inside a continuation (a last line ending in \\)")
    return found


def exec_form(args: str) -> list[str] | None:
    """`["a", "b"]` -> its strings, as Docker reads the exec form: a JSON array of strings;
    anything else (None) is the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def go_duration(text: str) -> float | None:
    """A Go duration (`10s`, `1m30s`, `500ms`, `0`), as Docker reads HEALTHCHECK's options, in
    seconds; None if it is not one."""
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _healthcheck(args: str, where: str) -> Healthcheck:
    words = args.split(None, 1)
    options: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, has_value, value = words[0][2:].partition("=")
        if not has_value:
            raise DockerfileError(f"{where}: HEALTHCHECK --{name} has no value")
        options[name] = value
        words = words[1].split(None, 1) if len(words) > 1 else []
    kind = words[0].upper() if words else ""
    command = words[1].strip() if len(words) > 1 else ""
    if kind == "NONE":
        if options:
            raise DockerfileError(f"{where}: HEALTHCHECK NONE takes no options")
        return Healthcheck(["NONE"])
    if kind != "CMD" or not command:
        raise DockerfileError(f"{where}: HEALTHCHECK needs CMD and a command (or NONE), not {args!r}")
    argv = exec_form(command)
    check = Healthcheck(["CMD", *argv] if argv is not None else ["CMD-SHELL", command])
    for name, value in options.items():
        key = name.replace("-", "_")
        if key == "retries":
            if not value.isdigit():
                raise DockerfileError(f"{where}: HEALTHCHECK --retries={value} is not a whole number")
            check.retries = int(value)
        elif key in ("interval", "timeout", "start_period", "start_interval"):
            seconds = go_duration(value)
            if seconds is None:
                raise DockerfileError(f"{where}: HEALTHCHECK --{name}={value} is no duration (10s, 1m30s, 500ms)")
            setattr(check, key, seconds if seconds else HEALTHCHECK_DEFAULTS[key])
        else:
            raise DockerfileError(f"{where}: HEALTHCHECK has no option --{name}")
    return check


def _env_pairs(args: str, where: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="two words"`, or the legacy `ENV A one two` (the rest of the line)."""
    first = args.split(None, 1)
    if first and "=" not in first[0]:
        return [(first[0], first[1].strip() if len(first) > 1 else "")]
    try:
        words = shlex.split(args)
    except ValueError as e:
        raise DockerfileError(f"{where}: ENV {args}: {e}") from None
    pairs = []
    for word in words:
        key, has_value, value = word.partition("=")
        if not has_value or not key:
            raise DockerfileError(f"{where}: ENV {args}: {word!r} is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _copy(args: str, where: str) -> Copy:
    source_stage = None
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if flag.startswith("--from="):
            source_stage = flag.split("=", 1)[1]
    paths = exec_form(rest) if rest.startswith("[") else rest.split()
    if not paths or len(paths) < 2:
        raise DockerfileError(f"{where}: COPY {args}: needs a source and a destination")
    return Copy(source_stage, paths[:-1], paths[-1])


def parse(text: str, path: Path | str = "Dockerfile") -> Dockerfile:
    where = str(path)
    stages: list[Stage] = []
    for i in instructions(text, where):
        at = f"{where}:{i.line}"
        if "<<" in i.args and i.op in ("RUN", "COPY", "ADD") and re.search(r"<<-?[\"']?[A-Za-z_]", i.args):
            raise DockerfileError(f"{at}: {i.op} with a heredoc is not read here")
        if i.op == "FROM":
            words = i.args.split()
            platform = next((w.split("=", 1)[1] for w in words if w.startswith("--platform=")), None)
            words = [w for w in words if not w.startswith("--")]
            if not words:
                raise DockerfileError(f"{at}: FROM names no image")
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            if len(words) not in (1, 3) or (len(words) == 3 and name is None):
                raise DockerfileError(f"{at}: FROM {i.args}: expected FROM [--platform=P] IMAGE [AS NAME]")
            stages.append(Stage(words[0], name, platform, i.line))
            continue
        if not stages:
            if i.op == "ARG":
                continue  # an ARG before the first FROM only feeds FROM lines
            raise DockerfileError(f"{at}: {i.op} before the first FROM")
        stage = stages[-1]
        stage.instructions.append(i)
        if i.op in ("ENV", "USER", "WORKDIR", "EXPOSE", "STOPSIGNAL") and "$" in i.args:
            raise DockerfileError(f"{at}: {i.op} {i.args}: `$` substitution is not read here")
        if i.op == "RUN":
            stage.runs.append(i.args)
        elif i.op == "COPY":
            stage.copies.append(_copy(i.args, at))
        elif i.op == "USER":
            stage.user = i.args
        elif i.op == "WORKDIR":
            stage.workdir = i.args if i.args.startswith("/") else f"{(stage.workdir or '/').rstrip('/')}/{i.args}"
        elif i.op == "ENV":
            stage.env += _env_pairs(i.args, at)
        elif i.op == "EXPOSE":
            stage.expose += i.args.split()
        elif i.op == "ENTRYPOINT":
            stage.entrypoint = exec_form(i.args)
        elif i.op == "CMD":
            stage.cmd = exec_form(i.args)
        elif i.op == "STOPSIGNAL":
            stage.stopsignal = i.args
        elif i.op == "HEALTHCHECK":
            stage.healthcheck = _healthcheck(i.args, at)
    if not stages:
        raise DockerfileError(f"{where}: no FROM")
    names = {s.name for s in stages[:-1] if s.name} | {str(n) for n in range(len(stages) - 1)}
    if stages[-1].image in names:
        raise DockerfileError(f"{where}:{stages[-1].line}: the final stage is FROM the stage {stages[-1].image}, "
                              "whose settings it inherits: not read here")
    return Dockerfile(Path(path), stages)


def read(path: Path) -> Dockerfile:
    return parse(path.read_text(encoding="utf-8"), path)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: dockerfile.py PATH (prints its stages as JSON)", file=sys.stderr)
        return 2
    try:
        dockerfile = read(Path(argv[0]))
    except OSError as e:
        print(f"dockerfile.py: {e}", file=sys.stderr)
        return os.EX_NOINPUT
    except (DockerfileError, UnicodeDecodeError) as e:
        print(f"dockerfile.py: {e}", file=sys.stderr)
        return os.EX_DATAERR
    json.dump(dockerfile.to_json(), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
