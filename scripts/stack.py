#!/usr/bin/env python3
"""The local stack, read from template.yaml: the one source of truth for names and env vars.

Creates on an emulator (moto) every AWS::DynamoDB::Table and AWS::S3::Bucket that the template
would create under the given parameter values, with the template's key schema and billing mode,
named `<prefix>-<logical id, lowercased>`; then evaluates a function's Environment.Variables
(Globals merged in) against those names and prints them as KEY=VALUE lines.

    scripts/stack.py --endpoint http://127.0.0.1:PORT --store s3 --prefix local \
        [--function HitsFunction] [--env-file PATH] [--parameter Name=Value ...]

Re-running with the same prefix is fine: existing tables and buckets are kept (a table whose key
schema differs from the template is an error). Runs with the project's .venv python (PyYAML,
boto3), re-executing itself with it when started with another interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

import yaml  # noqa: E402  (after the re-exec into the venv)

TEMPLATE = ROOT / "template.yaml"
DEFAULT_REGION = "eu-west-2"
ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_TYPES = ("AWS::DynamoDB::Table", "AWS::S3::Bucket")


class StackError(Exception):
    """The template asks for something this local evaluation cannot do."""


# --- Loading: CloudFormation short tags become their long (dict) form. ----------------------


class _Loader(yaml.SafeLoader):
    pass


def _construct_tag(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise StackError(f"{path} has no Resources")
    return template


# --- Evaluation. ----------------------------------------------------------------------------

_NO_VALUE = object()


class Stack:
    """A template evaluated under parameter values, with local physical names."""

    def __init__(self, template: dict[str, Any], prefix: str, parameters: dict[str, str], region: str):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", prefix):
            raise StackError(f"--prefix {prefix!r}: use 1-31 lowercase letters, digits and dashes")
        self.template = template
        self.prefix = prefix
        self.region = region
        self.parameters = self._parameters(parameters)
        self._conditions: dict[str, bool] = {}

    def _parameters(self, given: dict[str, str]) -> dict[str, str]:
        declared = self.template.get("Parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise StackError(f"unknown parameter(s) {sorted(unknown)}; the template declares {sorted(declared)}")
        values = {}
        for name, spec in declared.items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise StackError(f"parameter {name} has no default; pass --parameter {name}=VALUE")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise StackError(f"parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return values

    # Conditions.

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise StackError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            (function, args), = expression.items()
            if function == "Condition":
                return self.condition(args)
            if function == "Fn::Equals":
                left, right = (self.value(a) for a in args)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self._truth(args[0])
            if function == "Fn::And":
                return all(self._truth(a) for a in args)
            if function == "Fn::Or":
                return any(self._truth(a) for a in args)
        raise StackError(f"cannot evaluate condition {expression!r}")

    # Resources.

    def exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"][logical_id]
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    def local_resources(self) -> list[tuple[str, dict[str, Any]]]:
        """The tables and buckets the template creates under these parameters, in order."""
        return [
            (logical_id, resource)
            for logical_id, resource in self.template["Resources"].items()
            if resource.get("Type") in LOCAL_TYPES and self.exists(logical_id)
        ]

    def physical_name(self, logical_id: str) -> str:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            raise StackError(f"unknown resource {logical_id}")
        if resource.get("Type") not in LOCAL_TYPES:
            raise StackError(f"{logical_id} ({resource.get('Type')}) has no local equivalent; only {LOCAL_TYPES}")
        if not self.exists(logical_id):
            raise StackError(f"{logical_id} does not exist under {self.parameters}")
        return f"{self.prefix}-{logical_id.lower()}"

    def attribute(self, logical_id: str, attribute: str) -> str:
        name = self.physical_name(logical_id)
        kind = self.template["Resources"][logical_id]["Type"]
        if attribute == "Arn" and kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        raise StackError(f"Fn::GetAtt {logical_id}.{attribute} is not supported locally (only .Arn)")

    # Values.

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.prefix,
            "AWS::NoValue": _NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_name(name)

    def value(self, node: Any) -> Any:
        """Resolves intrinsic functions in `node`; `AWS::NoValue` removes keys and items."""
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, args), = node.items()
            if key == "Ref":
                return self.ref(args)
            if key == "Fn::GetAtt":
                resource, attribute = args if isinstance(args, list) else str(args).split(".", 1)
                return self.attribute(resource, attribute)
            if key == "Fn::If":
                condition, if_true, if_false = args
                return self.value(if_true if self.condition(condition) else if_false)
            if key == "Fn::Sub":
                return self._sub(args)
            if key == "Fn::Join":
                delimiter, items = args
                return str(delimiter).join(str(i) for i in self.value(items))
            if key == "Fn::Select":
                index, items = args
                return self.value(items)[int(self.value(index))]
            if key == "Fn::Split":
                delimiter, text = args
                return str(self.value(text)).split(delimiter)
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._truth(node)
            if key.startswith("Fn::"):
                raise StackError(f"{key} is not supported locally")
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else (args[0], args[1])
        variables = {k: self.value(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self.attribute(resource, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # Functions.

    def environment(self, function: str) -> dict[str, str]:
        resource = self.template["Resources"].get(function)
        if resource is None or resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            raise StackError(f"{function} is not a function in {TEMPLATE.name}")
        variables: dict[str, Any] = {}
        if resource["Type"] == "AWS::Serverless::Function":
            globals_ = ((self.template.get("Globals") or {}).get("Function") or {})
            variables.update(((globals_.get("Environment") or {}).get("Variables")) or {})
        variables.update((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
        resolved = self.value(variables)
        return {k: str(v) for k, v in resolved.items()}


# --- Creating the resources on the emulator. -------------------------------------------------


def _clients(endpoint: str, region: str) -> tuple[Any, Any]:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=region)
    return session.client("dynamodb", endpoint_url=endpoint), session.client("s3", endpoint_url=endpoint)


def _create_table(dynamodb: Any, stack: Stack, logical_id: str, properties: dict[str, Any]) -> str:
    name = stack.physical_name(logical_id)
    wanted = {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if wanted["BillingMode"] == "PROVISIONED":
        wanted["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    try:
        dynamodb.create_table(TableName=name, **wanted)
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return f"created table {name}"
    except dynamodb.exceptions.ResourceInUseException:
        existing = dynamodb.describe_table(TableName=name)["Table"]
        if sorted(map(_items, existing["KeySchema"])) != sorted(map(_items, wanted["KeySchema"])):
            raise StackError(f"table {name} exists with key {existing['KeySchema']}, the template wants "
                             f"{wanted['KeySchema']}; use another --prefix or restart the emulator") from None
        return f"kept table {name}"


def _items(d: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in d.items()))


def _create_bucket(s3: Any, stack: Stack, logical_id: str) -> str:
    name = stack.physical_name(logical_id)
    kwargs: dict[str, Any] = {"Bucket": name}
    if stack.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": stack.region}
    try:
        s3.create_bucket(**kwargs)
        return f"created bucket {name}"
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        return f"kept bucket {name}"


def create(stack: Stack, endpoint: str) -> list[str]:
    """Creates the stack's tables and buckets on the emulator; returns what it did."""
    dynamodb, s3 = _clients(endpoint, stack.region)
    done = []
    for logical_id, resource in stack.local_resources():
        properties = stack.value(resource.get("Properties") or {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            done.append(_create_table(dynamodb, stack, logical_id, properties))
        else:
            done.append(_create_bucket(s3, stack, logical_id))
    return done


# --- Command line. --------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the emulator, e.g. http://127.0.0.1:5000")
    parser.add_argument("--store", help="the template's Store parameter (e.g. dynamodb, s3)")
    parser.add_argument("--prefix", default="local", help="physical names are <prefix>-<logical id> (default local)")
    parser.add_argument("--function", default="HitsFunction", help="whose environment to print (default HitsFunction)")
    parser.add_argument("--env-file", type=Path, help="write KEY=VALUE lines here instead of stdout")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="any other template parameter (repeatable)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        parameters = {}
        for item in args.parameter:
            name, sep, value = item.partition("=")
            if not sep:
                raise StackError(f"--parameter {item!r} is not NAME=VALUE")
            parameters[name] = value
        if args.store is not None:
            parameters["Store"] = args.store
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        stack = Stack(load_template(args.template), args.prefix, parameters, region)
        environment = stack.environment(args.function)
        for line in create(stack, args.endpoint):
            print(f"stack.py: {line}", file=sys.stderr)
    except StackError as e:
        print(f"stack.py: {e}", file=sys.stderr)
        return 2
    for key, value in environment.items():
        if "\n" in value:
            print(f"stack.py: {key} has a newline; cannot write it as KEY=VALUE", file=sys.stderr)
            return 2
    lines = "".join(f"{k}={v}\n" for k, v in environment.items())
    if args.env_file:
        args.env_file.parent.mkdir(parents=True, exist_ok=True)
        args.env_file.write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
