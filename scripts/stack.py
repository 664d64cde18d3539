#!/usr/bin/env python3
"""The local stack, read from template.yaml: the one source of truth for names and env vars.

Creates on an emulator (moto) every AWS::DynamoDB::Table (a GlobalTable as one table),
AWS::S3::Bucket, AWS::SQS::Queue and AWS::Kinesis::Stream that the template would create under the given parameter values, named `<prefix>-<logical id,
lowercased>`: tables with the template's key schema, billing mode, stream and TTL; queues with their
VisibilityTimeout, MessageRetentionPeriod, RedrivePolicy (dead-letter queues first) and the like;
streams with their mode and shard count.
Then it evaluates a function's Environment.Variables (Globals merged in) against those names and
prints them as KEY=VALUE lines. `Ref` on a queue is its URL (as in CloudFormation), on the
emulator's endpoint; `Ref` on a function (or its `.Alias`) is its local name, the binary its
CodeUri names (`target/lambda/<binary>/`), as `cargo lambda watch` calls it.

    scripts/stack.py --endpoint http://127.0.0.1:PORT --store s3 --prefix local \
        [--function HitsFunction|CalcWorkerFunction|...] [--env-file PATH] \
        [--outputs PATH [--lambda-port PORT]] [--parameter Name=Value ...]

--outputs PATH also writes what the local drivers of the queue and the pipeline need, as JSON (see
`outputs()`; every value comes from the template: its Outputs, parameters, the CalcModel and the
pipeline's event source mappings):

    {"region": "eu-west-2", "endpoint": "http://127.0.0.1:PORT", "prefix": "local",
     "calc": {"queue_url": ..., "dead_letter_queue_url": ..., "table": ..., "messages_table": ...,
              "max_x": 10, "max_receive_count": 3, "batch_size": 10,
              "batching_window_seconds": 0, "max_concurrency": 50, "timeout_seconds": 30,
              "visibility_timeout_seconds": 180, "method": "POST", "path": "/v1/calc",
              "request_schema": {...the CalcModel JSON schema, evaluated...}},
     "pipeline": {"url": "http://127.0.0.1:PORT/lambda-url/pipeline-upstream/items",
                  "function_url": "http://127.0.0.1:PORT/lambda-url/pipeline-upstream/",
                  "stream": ..., "stream_mode": "PROVISIONED", "shard_count": 1,
                  "items_table": ..., "results_table": ..., "failure_queue_url": ...,
                  "metrics_namespace": "Pipeline/local",
                  "functions": {"upstream": "pipeline-upstream", "midstream": ..., "downstream": ...},
                  "midstream": {...its event source mapping, see event_source_mapping()...},
                  "downstream": {...}}}

The two URLs are where `cargo lambda watch` on --lambda-port serves upstream (its Function URL
emulation, `/lambda-url/<function>/`, and the HTTP API route's path under it); null without
--lambda-port.

Parameter values are checked as CloudFormation would (AllowedValues, MinValue/MaxValue of
Numbers, the template's Rules), and --outputs checks what CloudFormation cannot express
(CalcTimeout > MaxX, CalcVisibilityTimeout >= CalcTimeout; 6x is a warning).

Re-running with the same prefix is fine: existing tables, buckets and queues are kept (a table
whose key schema differs from the template is an error; a kept queue gets the template's
attributes again). Runs with the project's .venv python (PyYAML, boto3), re-executing itself
with it when started with another interpreter.
"""

from __future__ import annotations

import argparse
import json
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
# A global table is one table locally (its replicas are other regions' business).
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
STREAM_TYPE = "AWS::Kinesis::Stream"
LOCAL_TYPES = (*TABLE_TYPES, "AWS::S3::Bucket", "AWS::SQS::Queue", STREAM_TYPE)
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


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


def _references(node: Any) -> set[str]:
    """The logical ids (and parameters) a resource refers to: Ref, Fn::GetAtt, ${...} in
    Fn::Sub, and DependsOn."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                if isinstance(value, list):
                    found |= _references(value[1])
            elif key == "DependsOn":
                found |= {value} if isinstance(value, str) else set(value)
            else:
                found |= _references(value)
    return found


class Stack:
    """A template evaluated under parameter values, with local physical names."""

    def __init__(self, template: dict[str, Any], prefix: str, parameters: dict[str, str], region: str,
                 endpoint: str | None = None):
        """`endpoint` is the emulator's: queue URLs are on it (without one, SQS's public URLs)."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", prefix):
            raise StackError(f"--prefix {prefix!r}: use 1-31 lowercase letters, digits and dashes")
        self.template = template
        self.prefix = prefix
        self.region = region
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.parameters = self._parameters(parameters)
        self._conditions: dict[str, bool] = {}
        self._check_rules()

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
            if spec.get("Type") == "Number":
                try:
                    number = float(value)
                except ValueError:
                    raise StackError(f"parameter {name}={value!r} is not a number") from None
                low, high = spec.get("MinValue"), spec.get("MaxValue")
                if (low is not None and number < float(low)) or (high is not None and number > float(high)):
                    raise StackError(f"parameter {name}={value} is outside {low}..{high}")
            values[name] = value
        return values

    def number(self, name: str) -> int | float:
        """A Number parameter's value: an int when it is whole, else a float."""
        value = float(self.parameters[name])
        return int(value) if value.is_integer() else value

    def _check_rules(self) -> None:
        """The template's Rules, as CloudFormation checks them before it creates anything."""
        for name, rule in (self.template.get("Rules") or {}).items():
            if "RuleCondition" in rule and not self._truth(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self._truth(assertion["Assert"]):
                    description = " ".join(str(assertion.get("AssertDescription", "")).split())
                    raise StackError(f"rule {name} fails: {description or assertion['Assert']}")

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
            if function == "Fn::Contains":  # Rules only
                items, item = args
                return str(self.value(item)) in [str(i) for i in self.value(items)]
        raise StackError(f"cannot evaluate condition {expression!r}")

    # Resources.

    def exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"][logical_id]
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    def local_resources(self) -> list[tuple[str, dict[str, Any]]]:
        """The tables, buckets and queues the template creates under these parameters, in
        template order except that a resource comes after those it refers to (a queue after
        its dead-letter queue)."""
        wanted = {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource.get("Type") in LOCAL_TYPES and self.exists(logical_id)
        }
        ordered: list[str] = []

        def visit(logical_id: str, path: tuple[str, ...]) -> None:
            if logical_id in ordered:
                return
            if logical_id in path:
                raise StackError(f"circular reference: {' -> '.join((*path, logical_id))}")
            for dependency in sorted(_references(wanted[logical_id]) & set(wanted)):
                visit(dependency, (*path, logical_id))
            ordered.append(logical_id)

        for logical_id in wanted:
            visit(logical_id, ())
        return [(logical_id, wanted[logical_id]) for logical_id in ordered]

    def physical_name(self, logical_id: str) -> str:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            raise StackError(f"unknown resource {logical_id}")
        if resource.get("Type") not in LOCAL_TYPES:
            raise StackError(f"{logical_id} ({resource.get('Type')}) has no local equivalent; only {LOCAL_TYPES}")
        if not self.exists(logical_id):
            raise StackError(f"{logical_id} does not exist under {self.parameters}")
        return f"{self.prefix}-{logical_id.lower()}"

    def queue_url(self, logical_id: str) -> str:
        """Where the queue is: on the emulator (as moto names it), else SQS's public URL."""
        base = self.endpoint or f"https://sqs.{self.region}.amazonaws.com"
        return f"{base}/{ACCOUNT_ID}/{self.physical_name(logical_id)}"

    def attribute(self, logical_id: str, attribute: str) -> str:
        name = self.physical_name(logical_id)
        kind = self.template["Resources"][logical_id]["Type"]
        if attribute == "Arn" and kind in TABLE_TYPES:
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if attribute == "Arn" and kind == STREAM_TYPE:
            return f"arn:aws:kinesis:{self.region}:{ACCOUNT_ID}:stream/{name}"
        if kind == "AWS::SQS::Queue":
            if attribute == "Arn":
                return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}"
            if attribute == "QueueName":
                return name
            if attribute == "QueueUrl":
                return self.queue_url(logical_id)
        raise StackError(f"Fn::GetAtt {logical_id}.{attribute} is not supported locally "
                         "(.Arn of tables, buckets, queues and Kinesis streams; .QueueName, .QueueUrl of queues)")

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
            value = self.parameters[name]
            if (self.template.get("Parameters") or {})[name].get("Type") == "CommaDelimitedList":
                return [v.strip() for v in value.split(",")] if value else []
            return value
        if (self.template["Resources"].get(name) or {}).get("Type") == "AWS::SQS::Queue":
            return self.queue_url(name)  # as CloudFormation: Ref of a queue is its URL
        function = name.removesuffix(".Alias")  # SAM's `!Ref Function.Alias`
        if (self.template["Resources"].get(function) or {}).get("Type") in FUNCTION_TYPES:
            return self.function_name(function)
        return self.physical_name(name)

    def function_name(self, logical_id: str) -> str:
        """A function's local name: the binary its CodeUri names (`target/lambda/<binary>/`),
        which is what `cargo lambda watch` serves it as (locally there are no versions or
        aliases: `live` is the code being watched)."""
        resource = self.template["Resources"].get(logical_id) or {}
        if resource.get("Type") not in FUNCTION_TYPES:
            raise StackError(f"{logical_id} is not a function in {TEMPLATE.name}")
        code_uri = str((resource.get("Properties") or {}).get("CodeUri", ""))
        match = re.fullmatch(r"target/lambda/([A-Za-z0-9_-]+)/?", code_uri)
        if match is None:
            raise StackError(f"{logical_id}'s CodeUri {code_uri!r} is not target/lambda/<binary>/")
        return match.group(1)

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

    # REST APIs (scripts/calc_api.py serves a method locally as the template declares it).

    def _resource_of_type(self, node: Any, kind: str, what: str) -> tuple[str, dict[str, Any]]:
        if not (isinstance(node, dict) and list(node) == ["Ref"]):
            raise StackError(f"{what}: expected a Ref to an {kind}, got {node!r}")
        resource = self.template["Resources"].get(node["Ref"]) or {}
        if resource.get("Type") != kind:
            raise StackError(f"{what}: {node['Ref']} is not an {kind}")
        return node["Ref"], resource.get("Properties") or {}

    def rest_method(self, logical_id: str) -> tuple[str, str, dict[str, Any]]:
        """An AWS::ApiGateway::Method: its HTTP method, its path as a client calls it on the
        API's one stage (`/<StageName>/<PathPart>/...`), and its RequestModels as JSON schemas
        by content type (each model's Schema evaluated, e.g. MaxX substituted)."""
        resource = self.template["Resources"].get(logical_id) or {}
        if resource.get("Type") != "AWS::ApiGateway::Method":
            raise StackError(f"{logical_id} is not an AWS::ApiGateway::Method in {TEMPLATE.name}")
        properties = resource.get("Properties") or {}
        api = properties.get("RestApiId")
        parts: list[str] = []
        node = properties.get("ResourceId")
        while node != {"Fn::GetAtt": [api.get("Ref") if isinstance(api, dict) else api, "RootResourceId"]}:
            _, path_resource = self._resource_of_type(node, "AWS::ApiGateway::Resource", logical_id)
            parts.insert(0, str(self.value(path_resource["PathPart"])))
            node = path_resource.get("ParentId")
        stages = [
            str(self.value((r.get("Properties") or {})["StageName"]))
            for r in self.template["Resources"].values()
            if r.get("Type") == "AWS::ApiGateway::Stage" and (r.get("Properties") or {}).get("RestApiId") == api
        ]
        if len(stages) != 1:
            raise StackError(f"{logical_id}: its API has {len(stages)} AWS::ApiGateway::Stage resources, not one")
        models = {}
        for content_type, model in (properties.get("RequestModels") or {}).items():
            model_id, model_properties = self._resource_of_type(model, "AWS::ApiGateway::Model", logical_id)
            schema = self.value(model_properties.get("Schema") or {})
            try:
                models[content_type] = json.loads(schema) if isinstance(schema, str) else schema
            except json.JSONDecodeError as e:
                raise StackError(f"{model_id}'s Schema is not JSON once evaluated: {e}") from None
        return str(properties["HttpMethod"]).upper(), "/" + "/".join([stages[0], *parts]), models

    def gateway_responses(self, method: str) -> dict[str, tuple[int, dict[str, str]]]:
        """The AWS::ApiGateway::GatewayResponse resources of a method's API: by ResponseType,
        (StatusCode, ResponseTemplates)."""
        api = (self.template["Resources"][method].get("Properties") or {}).get("RestApiId")
        found = {}
        for logical_id, resource in self.template["Resources"].items():
            properties = resource.get("Properties") or {}
            if (resource.get("Type") == "AWS::ApiGateway::GatewayResponse" and properties.get("RestApiId") == api
                    and self.exists(logical_id)):
                templates = {k: str(v) for k, v in (properties.get("ResponseTemplates") or {}).items()}
                found[str(properties["ResponseType"])] = (int(properties["StatusCode"]), templates)
        return found

    # Functions.

    def environment(self, function: str) -> dict[str, str]:
        resource = self.template["Resources"].get(function)
        if resource is None or resource.get("Type") not in FUNCTION_TYPES:
            raise StackError(f"{function} is not a function in {TEMPLATE.name}")
        variables: dict[str, Any] = {}
        if resource["Type"] == "AWS::Serverless::Function":
            globals_ = ((self.template.get("Globals") or {}).get("Function") or {})
            variables.update(((globals_.get("Environment") or {}).get("Variables")) or {})
        variables.update((((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
        resolved = self.value(variables)
        return {k: str(v) for k, v in resolved.items()}

    def http_api_paths(self, function: str) -> list[str]:
        """The paths of a SAM function's HttpApi events (e.g. ["/items"])."""
        resource = self.template["Resources"].get(function) or {}
        events = (resource.get("Properties") or {}).get("Events") or {}
        return [str(self.value((event.get("Properties") or {}).get("Path")))
                for event in events.values() if event.get("Type") == "HttpApi"]

    def event_source_mapping(self, logical_id: str) -> dict[str, Any]:
        """An AWS::Lambda::EventSourceMapping as a local poller takes it: the function's local
        name, the source (`kinesis` with the stream's name, or `dynamodb-streams` with the table's:
        a stream's ARN is the emulator's, found with DescribeTable), the settings (numbers
        evaluated from the parameters; Lambda's defaults where the template leaves one out), the
        on-failure queue's URL and the filter patterns as JSON objects."""
        resource = self.template["Resources"].get(logical_id) or {}
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            raise StackError(f"{logical_id} is not an AWS::Lambda::EventSourceMapping in {TEMPLATE.name}")
        properties = resource.get("Properties") or {}
        source = properties.get("EventSourceArn")
        if not (isinstance(source, dict) and list(source) == ["Fn::GetAtt"]):
            raise StackError(f"{logical_id}: EventSourceArn must be a Fn::GetAtt of a stream or a table's StreamArn")
        source_id, attribute = source["Fn::GetAtt"]
        kind = (self.template["Resources"].get(source_id) or {}).get("Type")
        if kind == STREAM_TYPE and attribute == "Arn":
            mapping: dict[str, Any] = {"source": "kinesis", "stream": self.physical_name(source_id)}
        elif kind in TABLE_TYPES and attribute == "StreamArn":
            mapping = {"source": "dynamodb-streams", "table": self.physical_name(source_id)}
        else:
            raise StackError(f"{logical_id}: EventSourceArn {source_id}.{attribute} is neither a Kinesis "
                             "stream's Arn nor a table's StreamArn")

        def number(key: str, default: int) -> int:
            value = self.value(properties[key]) if key in properties else default
            return int(float(value))

        destination = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        on_failure = None
        if destination is not None:
            if not (isinstance(destination, dict) and list(destination) == ["Fn::GetAtt"]
                    and destination["Fn::GetAtt"][1] == "Arn"
                    and (self.template["Resources"].get(destination["Fn::GetAtt"][0]) or {}).get("Type")
                    == "AWS::SQS::Queue"):
                raise StackError(f"{logical_id}: only an SQS queue's Arn is supported as the on-failure destination")
            on_failure = self.queue_url(destination["Fn::GetAtt"][0])
        filters = []
        for item in ((properties.get("FilterCriteria") or {}).get("Filters") or []):
            pattern = self.value(item.get("Pattern"))
            try:
                filters.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
            except json.JSONDecodeError as e:
                raise StackError(f"{logical_id}: a filter pattern is not JSON: {e}") from None
        function = properties.get("FunctionName")
        mapping.update({
            "function": str(self.value(function)),
            "starting_position": str(self.value(properties.get("StartingPosition", "LATEST"))),
            "batch_size": number("BatchSize", 100),
            "batching_window_seconds": number("MaximumBatchingWindowInSeconds", 0),
            "parallelization_factor": number("ParallelizationFactor", 1),
            "bisect_on_error": str(self.value(properties.get("BisectBatchOnFunctionError", False))).lower() == "true",
            "report_batch_item_failures": "ReportBatchItemFailures" in self.value(
                properties.get("FunctionResponseTypes") or []),
            "maximum_retry_attempts": number("MaximumRetryAttempts", -1),
            "maximum_record_age_seconds": number("MaximumRecordAgeInSeconds", -1),
            "on_failure_queue_url": on_failure,
            "filters": filters,
        })
        return mapping


# --- Creating the resources on the emulator. -------------------------------------------------


def _clients(endpoint: str, region: str) -> tuple[Any, Any, Any, Any]:
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=region)
    return tuple(session.client(service, endpoint_url=endpoint)  # type: ignore[return-value]
                 for service in ("dynamodb", "s3", "sqs", "kinesis"))


def _create_table(dynamodb: Any, stack: Stack, logical_id: str, properties: dict[str, Any]) -> str:
    name = stack.physical_name(logical_id)
    wanted = {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if wanted["BillingMode"] == "PROVISIONED":
        wanted["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    stream = _stream_specification(properties.get("StreamSpecification"))
    try:
        dynamodb.create_table(TableName=name, **wanted, **({"StreamSpecification": stream} if stream else {}))
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        done = f"created table {name}"
    except dynamodb.exceptions.ResourceInUseException:
        existing = dynamodb.describe_table(TableName=name)["Table"]
        if sorted(map(_items, existing["KeySchema"])) != sorted(map(_items, wanted["KeySchema"])):
            raise StackError(f"table {name} exists with key {existing['KeySchema']}, the template wants "
                             f"{wanted['KeySchema']}; use another --prefix or restart the emulator") from None
        done = f"kept table {name}"
        current = existing.get("StreamSpecification") or {}
        if stream and not current.get("StreamEnabled"):
            dynamodb.update_table(TableName=name, StreamSpecification=stream)
            done += " (stream enabled)"
        elif stream and current.get("StreamViewType") != stream["StreamViewType"]:
            raise StackError(f"table {name} has a {current.get('StreamViewType')} stream, the template wants "
                             f"{stream['StreamViewType']}; use another --prefix or restart the emulator")
    if stream:
        done += f" (stream {stream['StreamViewType']})"
    return done + _time_to_live(dynamodb, name, properties.get("TimeToLiveSpecification"))


def _stream_specification(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """CloudFormation's StreamSpecification (a view type means enabled) as CreateTable takes it."""
    if not spec or not spec.get("StreamViewType"):
        return None
    return {"StreamEnabled": True, "StreamViewType": str(spec["StreamViewType"])}


def _create_stream(kinesis: Any, stack: Stack, logical_id: str, properties: dict[str, Any]) -> str:
    """A Kinesis stream with the template's mode (and shard count when provisioned); a kept one
    must have the same, or it is an error as a table with another key is."""
    name = stack.physical_name(logical_id)
    mode = str((properties.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED"))
    shards = int(float(properties["ShardCount"])) if mode == "PROVISIONED" and "ShardCount" in properties else None
    if mode == "PROVISIONED" and shards is None:
        raise StackError(f"{logical_id} is PROVISIONED without a ShardCount")
    try:
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": mode},
                              **({"ShardCount": shards} if shards is not None else {}))
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        done = f"created stream {name}"
    except kinesis.exceptions.ResourceInUseException:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        existing_mode = (summary.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        if existing_mode != mode or (shards is not None and summary.get("OpenShardCount") != shards):
            raise StackError(f"stream {name} exists as {existing_mode} with {summary.get('OpenShardCount')} "
                             f"shards, the template wants {mode}" + (f" with {shards}" if shards else "")
                             + "; use another --prefix or restart the emulator") from None
        done = f"kept stream {name}"
    return done + (f" ({mode}, {shards} shard{'' if shards == 1 else 's'})" if shards is not None else f" ({mode})")


def _time_to_live(dynamodb: Any, name: str, spec: dict[str, Any] | None) -> str:
    """Enables the template's TTL on the table; an emulator without TTL is skipped quietly."""
    if not spec or str(spec.get("Enabled")).lower() != "true":
        return ""
    from botocore.exceptions import ClientError

    attribute = spec["AttributeName"]
    try:
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if current.get("AttributeName") != attribute:
                raise StackError(f"table {name} has TTL on {current.get('AttributeName')}, the template wants "
                                 f"{attribute}; use another --prefix or restart the emulator")
        else:
            dynamodb.update_time_to_live(TableName=name,
                                         TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("UnknownOperationException", "NotImplemented",
                                                       "InvalidAction", "501"):
            return ""
        raise
    return f" (TTL on {attribute})"


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


# The AWS::SQS::Queue properties that are SQS queue attributes of the same name. QueueName,
# KmsMasterKeyId and Tags have no local meaning (local names are <prefix>-<logical id>).
QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
                    "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "RedrivePolicy",
                    "RedriveAllowPolicy", "SqsManagedSseEnabled")


def _create_queue(sqs: Any, stack: Stack, logical_id: str, properties: dict[str, Any]) -> str:
    name = stack.physical_name(logical_id)
    if properties.get("FifoQueue"):
        raise StackError(f"{logical_id} is a FIFO queue; only standard queues are supported locally")
    attributes = {}
    for key in QUEUE_ATTRIBUTES:
        if key not in properties:
            continue
        value = properties[key]
        if key == "RedrivePolicy" and isinstance(value, dict) and "maxReceiveCount" in value:
            value = {**value, "maxReceiveCount": int(value["maxReceiveCount"])}
        if isinstance(value, dict):
            attributes[key] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[key] = "true" if value else "false"
        else:
            attributes[key] = str(value)
    try:  # a kept queue gets the template's attributes again (CreateQueue refuses other ones)
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        done = f"kept queue {name}"
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        done = f"created queue {name}"
    if url != stack.queue_url(logical_id):
        raise StackError(f"the emulator calls {logical_id} {url}, not {stack.queue_url(logical_id)}; "
                         "pass --endpoint as the emulator's own scheme://host:port")
    return done


def create(stack: Stack, endpoint: str) -> list[str]:
    """Creates the stack's tables, buckets, queues and streams on the emulator; returns what it did."""
    dynamodb, s3, sqs, kinesis = _clients(endpoint, stack.region)
    done = []
    for logical_id, resource in stack.local_resources():
        properties = stack.value(resource.get("Properties") or {})
        if resource["Type"] in TABLE_TYPES:
            done.append(_create_table(dynamodb, stack, logical_id, properties))
        elif resource["Type"] == "AWS::SQS::Queue":
            done.append(_create_queue(sqs, stack, logical_id, properties))
        elif resource["Type"] == STREAM_TYPE:
            done.append(_create_stream(kinesis, stack, logical_id, properties))
        else:
            done.append(_create_bucket(s3, stack, logical_id))
    return done


# --- What a local driver of the queue feature needs (--outputs). -----------------------------

# POST /calc as the template declares it (scripts/calc_api.py serves the same method).
CALC_METHOD = "CalcPostMethod"
# The pipeline's front function and its two event source mappings (docs/pipeline.md).
PIPELINE_UPSTREAM = "PipelineUpstreamFunction"
PIPELINE_MAPPINGS = {"midstream": "PipelineMidstreamEventSource", "downstream": "PipelineDownstreamEventSource"}
# Where `cargo lambda watch` listens (scripts/local).
LOCAL_HOST = "127.0.0.1"


def outputs(stack: Stack, lambda_port: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """The --outputs document (see the module docstring) and warnings. Names come from the
    template's Outputs, numbers from its parameters, the route and schema from CALC_METHOD, the
    pipeline's mappings from PIPELINE_MAPPINGS; the pipeline's URLs are on `cargo lambda watch`
    at `lambda_port` (None without one).
    Checks what CloudFormation cannot: CalcTimeout > MaxX and CalcVisibilityTimeout >=
    CalcTimeout (errors, as they break the deployed worker), >= 6 x CalcTimeout + the batching
    window (a warning: AWS's recommendation)."""
    declared = stack.template.get("Outputs") or {}

    def output(name: str) -> Any:
        if name not in declared:
            raise StackError(f"{TEMPLATE.name} has no output {name}")
        return stack.value(declared[name]["Value"])

    max_x, timeout = stack.number("MaxX"), stack.number("CalcTimeout")
    visibility, window = stack.number("CalcVisibilityTimeout"), stack.number("CalcBatchingWindowSeconds")
    if timeout <= max_x:
        raise StackError(f"CalcTimeout={timeout} must exceed MaxX={max_x}: a message of x = MaxX would time out")
    if visibility < timeout:
        raise StackError(f"CalcVisibilityTimeout={visibility} is below CalcTimeout={timeout}; "
                         "Lambda refuses such an SQS event source")
    warnings = []
    if visibility < 6 * timeout + window:
        warnings.append(f"CalcVisibilityTimeout={visibility} is below 6 x CalcTimeout + "
                        f"CalcBatchingWindowSeconds = {6 * timeout + window} (AWS's recommendation)")
    method, path, models = stack.rest_method(CALC_METHOD)
    if "application/json" not in models:
        raise StackError(f"{CALC_METHOD} has no application/json request model")
    document = {
        "region": stack.region,
        "endpoint": stack.endpoint,
        "prefix": stack.prefix,
        "calc": {
            "queue_url": output("CalcQueueUrl"),
            "dead_letter_queue_url": output("CalcDeadLetterQueueUrl"),
            "table": output("CalcTableName"),
            "messages_table": output("CalcMessagesTableName"),
            "max_x": max_x,
            "max_receive_count": stack.number("CalcMaxReceiveCount"),
            "batch_size": stack.number("CalcBatchSize"),
            "batching_window_seconds": window,
            "max_concurrency": stack.number("CalcMaxConcurrency"),
            "timeout_seconds": timeout,
            "visibility_timeout_seconds": visibility,
            "method": method,
            "path": path,
            "request_schema": models["application/json"],
        },
        "pipeline": _pipeline(stack, output, lambda_port),
    }
    return document, warnings


def _pipeline(stack: Stack, output: Any, lambda_port: int | None) -> dict[str, Any]:
    """The "pipeline" part of the --outputs document."""
    upstream = stack.function_name(PIPELINE_UPSTREAM)
    paths = stack.http_api_paths(PIPELINE_UPSTREAM)
    if len(paths) != 1:
        raise StackError(f"{PIPELINE_UPSTREAM} has {len(paths)} HttpApi events, not one")
    function_url = f"http://{LOCAL_HOST}:{lambda_port}/lambda-url/{upstream}/" if lambda_port else None
    mappings = {name: stack.event_source_mapping(logical_id) for name, logical_id in PIPELINE_MAPPINGS.items()}
    mode = str(stack.parameters["PipelineStreamMode"])
    return {
        "url": function_url + paths[0].lstrip("/") if function_url else None,
        "function_url": function_url,
        "stream": output("PipelineStreamName"),
        "stream_mode": mode,
        "shard_count": stack.number("PipelineShardCount") if mode == "PROVISIONED" else None,
        "items_table": output("PipelineItemsTableName"),
        "results_table": output("PipelineResultsTableName"),
        "failure_queue_url": output("PipelineFailureQueueUrl"),
        "metrics_namespace": output("PipelineMetricsNamespace"),
        "functions": {
            "upstream": output("PipelineUpstreamFunctionName"),
            "midstream": output("PipelineMidstreamFunctionName"),
            "downstream": output("PipelineDownstreamFunctionName"),
        },
        **mappings,
    }


# --- Command line. --------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the emulator, e.g. http://127.0.0.1:5000")
    parser.add_argument("--store", help="the template's Store parameter (e.g. dynamodb, s3)")
    parser.add_argument("--prefix", default="local", help="physical names are <prefix>-<logical id> (default local)")
    parser.add_argument("--function", default="HitsFunction",
                        help="whose environment to print (default HitsFunction; e.g. CalcWorkerFunction)")
    parser.add_argument("--env-file", type=Path, help="write KEY=VALUE lines here instead of stdout")
    parser.add_argument("--outputs", type=Path, metavar="PATH",
                        help="also write the queue's and the pipeline's local settings here as JSON (see the docstring)")
    parser.add_argument("--lambda-port", type=int, metavar="PORT",
                        help="the port of `cargo lambda watch` serving the functions: the pipeline's local URLs are on it")
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
        stack = Stack(load_template(args.template), args.prefix, parameters, region, args.endpoint)
        environment = stack.environment(args.function)
        document, warnings = outputs(stack, args.lambda_port) if args.outputs else (None, [])
        for line in warnings:
            print(f"stack.py: warning: {line}", file=sys.stderr)
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
    if args.outputs:
        args.outputs.parent.mkdir(parents=True, exist_ok=True)
        args.outputs.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
