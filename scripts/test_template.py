#!/usr/bin/env python3
"""Offline checks of template.yaml's operations wiring, on what SAM turns it into.

    python scripts/test_template.py          (unittest; re-execs into .venv)

cfn-lint and `sam validate --lint` check that the template is valid; these check that it does
what the README promises, on the CloudFormation SAM generates (the same aws-sam-translator that
`sam deploy` and CloudFormation's transform use, run here offline):
  - every function publishes a version behind the alias `live`, and every caller calls the
    alias: HTTP API routes, the Function URL, the SQS event source, Firehose's processor (and
    the role it invokes with), the warmer's rule;
  - every function that serves traffic has a CodeDeploy deployment group with the
    DeploymentType parameter and an alarm on that function's errors at `live`, with rollback;
  - the warmer rule exists, is disabled unless Warmer=on, and sends {"instruction":"warmer"};
  - Tracing follows its parameter; ReplicaRegions makes a global table with the right replicas,
    and the function's HITS_STORE and policy follow the table actually used;
  - the HTTP API sends every request of the hits contract (README) where the contract says:
    HEAD /hits, /healthz and wrong methods on / and /hits to the function (its router answers
    them as on the Function URL: functions/hits/tests/lambda_events.rs), GET and HEAD / to the
    page on S3, other paths nowhere (API Gateway's 404), each function route allowed to invoke
    the alias;
  - CORS on /events is the ingest router's alone (functions/ingest/src/cors.rs): the preflight
    reaches the function, neither HitsApi nor a Function URL of IngestFunction answers CORS
    itself (either would override the router's headers), and the function's allowed origins are
    the IngestAllowedOrigins parameter (default *), whose pattern takes what the router takes;
  - POST /calc answers 200 {"messageId": ...} when SQS takes the message, as the seed's driver
    expects, and the stage serves a deployment made after the method;
  - the pipeline (issue 15): POST /items and a Function URL on upstream's alias, both event
    source mappings with the settings docs/lambda-operations.md describes (LATEST, no batching
    window, the parameters, bisect, ReportBatchItemFailures, on-failure to the queue, INSERTs
    only downstream), the items table's NEW_IMAGE stream and both tables' TTL, each function's
    role naming only its own resources and no managed policy beyond logs and X-Ray, the Outputs
    the driver reads;
  - cfn-lint and `sam validate --lint` pass (scripts/test runs them too, on every template).
A check that the generated template cannot fail is no check: each test also breaks a copy of the
template and expects the check to notice.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import stack  # noqa: E402  (after the re-exec into the venv)
import test_hosting  # noqa: E402  (its cfn-lint runner and tool lookup)

# How SAM's OpenAPI body spells an ANY route's method.
ANY = "x-amazon-apigateway-any-method"

# Functions that serve traffic (and so deploy gradually); the others only publish `live`.
SERVING = {
    "HitsFunction": "HitsErrorsAlarm",
    "IngestFunction": "IngestErrorsAlarm",
    "IngestTransformFunction": "IngestTransformErrorsAlarm",
    "CalcWorkerFunction": "CalcWorkerErrorsAlarm",
    "PipelineUpstreamFunction": "PipelineUpstreamErrorsAlarm",
    "PipelineMidstreamFunction": "PipelineMidstreamErrorsAlarm",
    "PipelineDownstreamFunction": "PipelineDownstreamErrorsAlarm",
}


def transform(template_text: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation SAM makes of the template (local CodeUris become S3 URIs, as
    `sam deploy` uploads them)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-2")
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform as sam_transform
    from samtranslator.yaml_helper import yaml_parse

    class Policies:
        def load(self) -> dict[str, str]:
            names = ["service-role/AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess",
                     "service-role/AWSLambdaSQSQueueExecutionRole"]
            return {n.split("/")[-1]: f"arn:aws:iam::aws:policy/{n}" for n in names}

    text = re.sub(r"CodeUri: target/lambda/(\S+)/", r"CodeUri: s3://artifacts/\1.zip", template_text)
    try:
        return sam_transform(yaml_parse(text), parameters or {}, Policies())
    except InvalidDocumentException as e:
        raise AssertionError("SAM refuses the template: " + "; ".join(str(c) for c in e.causes)) from None


def problems(out: dict[str, Any]) -> list[str]:
    """What is wrong with the generated template's operations wiring."""
    found: list[str] = []
    resources = out["Resources"]
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"]
    alias_of = {}
    for name in functions:
        alias = f"{name}Aliaslive"
        if resources.get(alias, {}).get("Type") != "AWS::Lambda::Alias":
            found.append(f"{name} has no alias live")
        alias_of[name] = alias
    def targets(node: Any) -> str:
        return json.dumps(node)

    for name, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        # SAM names a function's URL <function>Url.
        if kind == "AWS::Lambda::Url" and targets(props.get("TargetFunctionArn")) != json.dumps(
                {"Ref": alias_of.get(name.removesuffix("Url"))}):
            found.append(f"{name} is not on the alias")
        if kind == "AWS::Lambda::EventSourceMapping" and "Aliaslive" not in targets(props.get("FunctionName")):
            found.append(f"{name} (event source) does not call the alias")
        if kind == "AWS::Events::Rule":
            for target in props.get("Targets", []):
                if "Aliaslive" not in targets(target.get("Arn")):
                    found.append(f"{name} targets {target.get('Arn')}, not an alias")
        if kind == "AWS::Lambda::Permission" and "Url" not in name and "Aliaslive" not in targets(props.get("FunctionName")):
            found.append(f"{name} allows calls of {props.get('FunctionName')}, not the alias")
        if kind == "AWS::KinesisFirehose::DeliveryStream":
            processing = props.get("ExtendedS3DestinationConfiguration", {}).get("ProcessingConfiguration", {})
            for processor in processing.get("Processors", []):
                for p in processor.get("Parameters", []):
                    if p["ParameterName"] == "LambdaArn" and "Aliaslive" not in targets(p["ParameterValue"]):
                        found.append(f"{name}'s processor invokes {p['ParameterValue']}, not the alias")
    # HTTP API integrations (in the OpenAPI body SAM writes): every function ARN is the alias's.
    for api in (v for v in resources.values() if v["Type"] == "AWS::ApiGatewayV2::Api"):
        for path, methods in api["Properties"]["Body"]["paths"].items():
            for method, operation in methods.items():
                integration = operation.get("x-amazon-apigateway-integration", {})
                uri = targets(integration.get("uri"))
                if integration.get("type") == "aws_proxy" and "Aliaslive" not in uri:
                    route = "ANY" if method == ANY else method.upper()
                    found.append(f"the HTTP API route {route} {path} integrates {uri}, not an alias")
    role = resources.get("FirehoseDeliveryRole", {}).get("Properties", {})
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if any(a.startswith("lambda:") for a in statement["Action"]) and "Aliaslive" not in targets(statement["Resource"]):
                found.append(f"FirehoseDeliveryRole may invoke {statement['Resource']}, not only the alias")
    for function, alarm in SERVING.items():
        group = resources.get(f"{function}DeploymentGroup")
        if group is None:
            found.append(f"{function} has no deployment group")
            continue
        props = group["Properties"]
        if json.dumps({"Name": {"Ref": alarm}}) not in json.dumps(props.get("AlarmConfiguration", {}).get("Alarms", [])):
            found.append(f"{function}'s deployment does not watch {alarm}")
        if "DEPLOYMENT_STOP_ON_ALARM" not in props.get("AutoRollbackConfiguration", {}).get("Events", []):
            found.append(f"{function}'s deployment does not roll back on its alarm")
        metric = resources.get(alarm, {}).get("Properties", {})
        dimensions = {d["Name"]: json.dumps(d["Value"]) for d in metric.get("Dimensions", [])}
        if metric.get("MetricName") != "Errors" or dimensions.get("FunctionName") != json.dumps({"Ref": function}) \
                or dimensions.get("Resource") != json.dumps({"Fn::Sub": f"${{{function}}}:live"}):
            found.append(f"{alarm} does not watch {function}:live's errors")
    return found


# The HTTP API's part of the hits contract (README, "The contract", per front door): who answers
# each request. "page" is the S3 object behind GET /; None is API Gateway's own 404 (no route, the
# function is not invoked). What the function answers for each is tested on the router
# (functions/hits/tests/lambda_events.rs); here, that the request reaches it.
HTTP_API_CONTRACT: dict[tuple[str, str], str | None] = {
    ("GET", "/hits"): "HitsFunction",       # 200, the count
    ("HEAD", "/hits"): "HitsFunction",      # 200, GET's headers, no increment
    ("POST", "/hits"): "HitsFunction",      # 405 with Allow: GET,HEAD
    ("DELETE", "/hits"): "HitsFunction",    # 405
    ("GET", "/healthz"): "HitsFunction",    # 200 {"status":"pass"}
    ("HEAD", "/healthz"): "HitsFunction",   # 200, no body
    ("PUT", "/healthz"): "HitsFunction",    # 405
    ("GET", "/"): "page",
    ("HEAD", "/"): "page",
    ("POST", "/"): "HitsFunction",          # 405
    ("POST", "/events"): "IngestFunction",
    ("POST", "/items"): "PipelineUpstreamFunction",
    ("GET", "/items"): None,
    ("OPTIONS", "/events"): "IngestFunction",  # 204, the CORS preflight (functions/ingest/src/cors.rs)
    ("GET", "/events"): "IngestFunction",      # 405 with Allow
    ("GET", "/nope"): None,
    ("GET", "/hits/1"): None,
}


def http_api_routes(out: dict[str, Any], api: str = "HitsApi") -> dict[tuple[str, str], str]:
    """The routes of an HTTP API as SAM generates them: (METHOD or ANY, path) -> the function
    whose alias the route invokes, "page" for the proxy to the page object, else the URI."""
    routes = {}
    for path, methods in out["Resources"][api]["Properties"]["Body"]["paths"].items():
        for method, operation in methods.items():
            integration = operation.get("x-amazon-apigateway-integration", {})
            uri = json.dumps(integration.get("uri"))
            function = re.search(r"/functions/\$\{(\w+?)(?:Aliaslive)?\}", uri)
            if integration.get("type") == "aws_proxy" and function:
                target = function.group(1)
            elif integration.get("type") == "http_proxy" and "${PageBucket}" in uri and "/index.html" in uri \
                    and integration.get("httpMethod", "").upper() == method.upper():
                target = "page"
            else:
                target = uri if integration else "no integration"
            routes[("ANY" if method == ANY else method.upper(), path)] = target
    return routes


def answerer(routes: dict[tuple[str, str], str], method: str, path: str) -> str | None:
    """Who gets `method path`, chosen as an HTTP API chooses (no greedy paths here): the route of
    that method, else the path's ANY route, else $default, else none (404)."""
    for key in ((method, path), ("ANY", path), ("ANY", "$default")):
        if key in routes:
            return routes[key]
    return None


def routing_problems(out: dict[str, Any]) -> list[str]:
    """Where the HTTP API sends a request of the contract elsewhere than HTTP_API_CONTRACT says,
    and function routes that API Gateway would not be allowed to invoke (a 500 on every call)."""
    routes = http_api_routes(out)
    found = [f"{method} {path} reaches {answerer(routes, method, path) or 'no route (404)'}, not {want or 'no route'}"
             for (method, path), want in HTTP_API_CONTRACT.items() if answerer(routes, method, path) != want]
    permissions = [p["Properties"] for p in out["Resources"].values() if p["Type"] == "AWS::Lambda::Permission"]
    values = {"AWS::Partition": "aws", "AWS::Region": "eu-west-2", "AWS::AccountId": "123456789012"}

    def source_arn(props: dict[str, Any]) -> str:
        node = props.get("SourceArn", {}).get("Fn::Sub")
        text, names = (node, {}) if isinstance(node, str) else (node or ["", {}])
        lookup = {**values, **{k: ("*" if k == "__Stage__" else json.dumps(v)) for k, v in names.items()}}
        return re.sub(r"\$\{([\w:]+)\}", lambda m: lookup.get(m.group(1), m.group(0)), text)

    for (method, path), target in routes.items():
        if target in ("page", None) or not re.fullmatch(r"\w+", target):
            continue
        # What API Gateway calls the function as (ArnLike: `*` matches anything, `/` included).
        arn = f'arn:aws:execute-api:eu-west-2:123456789012:{json.dumps({"Ref": "HitsApi"})}/$default/' \
              f'{"HEAD" if method == "ANY" else method}{path}'
        if not any(json.dumps(p.get("FunctionName")) == json.dumps({"Ref": f"{target}Aliaslive"})
                   and fnmatch.fnmatchcase(arn, source_arn(p)) for p in permissions):
            found.append(f"the route {method} {path} may not invoke {target}'s alias")
    return found


def cors_problems(out: dict[str, Any]) -> list[str]:
    """Where a front door of IngestFunction would answer CORS itself (an HTTP API's
    CorsConfiguration or a Function URL's Cors answer preflights and replace the function's
    headers), or the function's allowed origins are not the IngestAllowedOrigins parameter."""
    found = []
    resources = out["Resources"]
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApiGatewayV2::Api" and (
                "CorsConfiguration" in props or "x-amazon-apigateway-cors" in props.get("Body", {})):
            found.append(f"{name} answers CORS itself, over the ingest router's headers")
        if resource["Type"] == "AWS::Lambda::Url" and "IngestFunction" in json.dumps(props.get("TargetFunctionArn")) \
                and "Cors" in props:
            found.append(f"{name} answers CORS itself, over the ingest router's headers")
    variables = resources["IngestFunction"]["Properties"].get("Environment", {}).get("Variables", {})
    if variables.get("INGEST_ALLOWED_ORIGINS") != {"Ref": "IngestAllowedOrigins"}:
        found.append(f"IngestFunction's INGEST_ALLOWED_ORIGINS is {variables.get('INGEST_ALLOWED_ORIGINS')}, "
                     "not the IngestAllowedOrigins parameter")
    if out["Parameters"].get("IngestAllowedOrigins", {}).get("Default") != "*":
        found.append("IngestAllowedOrigins does not default to * (the seed's answer)")
    return found


def calc_problems(out: dict[str, Any]) -> list[str]:
    """What is wrong with POST /calc's answers (CalcPostMethod) and its deployment."""
    found = []
    resources = out["Resources"]
    props = resources["CalcPostMethod"]["Properties"]
    responses = props["Integration"]["IntegrationResponses"]
    # SQS's own answer to SendMessage is a 200; the response that pattern selects is the client's.
    taken = [r for r in responses if re.fullmatch(r.get("SelectionPattern", "(?!)"), "200")]
    if [r["StatusCode"] for r in taken] != ["200"]:
        found.append(f"a message SQS took is answered {[r['StatusCode'] for r in taken]}, not 200")
    elif "$.SendMessageResponse.SendMessageResult.MessageId" not in json.dumps(taken[0].get("ResponseTemplates")):
        found.append("the 200 does not carry the message id")
    default = [r["StatusCode"] for r in responses if "SelectionPattern" not in r]
    if default != ["502"]:
        found.append(f"SQS's failures are answered {default}, not 502")
    declared = sorted(r["StatusCode"] for r in props.get("MethodResponses", []))
    if declared != sorted(r["StatusCode"] for r in responses):
        found.append(f"the method declares {declared}, the integration answers {[r['StatusCode'] for r in responses]}")
    stages = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"
              and r["Properties"]["RestApiId"] == {"Ref": "CalcApi"}]
    deployment = resources.get(stages[0]["DeploymentId"]["Ref"], {}) if len(stages) == 1 else {}
    if "CalcPostMethod" not in deployment.get("DependsOn", []):
        found.append("CalcApi's stage does not serve a deployment made after CalcPostMethod")
    return found


# --- The pipeline (issue 15). ----------------------------------------------------------------

# What both stream mappings share (docs/lambda-operations.md, "Stream event sources").
MAPPING_SETTINGS = {
    "StartingPosition": "LATEST",
    "MaximumBatchingWindowInSeconds": 0,
    "BatchSize": {"Ref": "PipelineBatchSize"},
    "ParallelizationFactor": {"Ref": "PipelineParallelizationFactor"},
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MaximumRetryAttempts": {"Ref": "PipelineMaxRetryAttempts"},
    "MaximumRecordAgeInSeconds": {"Ref": "PipelineMaxRecordAgeSeconds"},
    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["PipelineFailureQueue", "Arn"]}}},
}
# mapping -> (the function whose alias it invokes, its source, its filters' patterns)
PIPELINE_MAPPINGS = {
    "PipelineMidstreamEventSource": ("PipelineMidstreamFunction", {"Fn::GetAtt": ["PipelineStream", "Arn"]}, None),
    "PipelineDownstreamEventSource": ("PipelineDownstreamFunction", {"Fn::GetAtt": ["PipelineItemsTable", "StreamArn"]},
                                      [{"eventName": ["INSERT"]}]),
}
KINESIS_READ = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams", "kinesis:SubscribeToShard"]
DYNAMODB_STREAM_READ = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                        "dynamodb:ListStreams"]
FAILURE_QUEUE = {"Fn::GetAtt": ["PipelineFailureQueue", "Arn"]}
# function -> every statement of its role's inline policy: (actions, resource). Nothing else.
PIPELINE_POLICIES = {
    "PipelineUpstreamFunction": [
        (["kinesis:DescribeStreamSummary", "kinesis:PutRecord"], {"Fn::GetAtt": ["PipelineStream", "Arn"]}),
    ],
    "PipelineMidstreamFunction": [
        (["dynamodb:PutItem"], {"Fn::GetAtt": ["PipelineItemsTable", "Arn"]}),
        (KINESIS_READ, {"Fn::GetAtt": ["PipelineStream", "Arn"]}),
        (["sqs:SendMessage"], FAILURE_QUEUE),
    ],
    "PipelineDownstreamFunction": [
        (["dynamodb:PutItem"], {"Fn::GetAtt": ["PipelineResultsTable", "Arn"]}),
        (DYNAMODB_STREAM_READ, {"Fn::Sub": "${PipelineItemsTable.Arn}/stream/*"}),
        (["sqs:SendMessage"], FAILURE_QUEUE),
    ],
}
# What SAM attaches for logs and Tracing; any other managed policy is wider than the function.
ALLOWED_MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}
PIPELINE_ENVIRONMENT = {
    "PipelineUpstreamFunction": {"PIPELINE_STREAM": {"Ref": "PipelineStream"}},
    "PipelineMidstreamFunction": {"PIPELINE_ITEMS_TABLE": {"Ref": "PipelineItemsTable"}},
    "PipelineDownstreamFunction": {"PIPELINE_RESULTS_TABLE": {"Ref": "PipelineResultsTable"},
                                   "PIPELINE_METRICS_NAMESPACE": {"Fn::Sub": "Pipeline/${AWS::StackName}"}},
}
# The outputs the driver and docs/pipeline.md name (the contract of issue 15).
PIPELINE_OUTPUTS = ["PipelineUrl", "PipelineFunctionUrl", "PipelineStreamName", "PipelineItemsTableName",
                    "PipelineResultsTableName", "PipelineFailureQueueUrl", "PipelineUpstreamFunctionName",
                    "PipelineMidstreamFunctionName", "PipelineDownstreamFunctionName"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def pipeline_problems(out: dict[str, Any]) -> list[str]:
    """What is wrong with the pipeline's wiring in the generated template."""
    found: list[str] = []
    resources = out["Resources"]

    def props(name: str) -> dict[str, Any]:
        return resources.get(name, {}).get("Properties", {})

    for mapping, (function, source, patterns) in PIPELINE_MAPPINGS.items():
        if resources.get(mapping, {}).get("Type") != "AWS::Lambda::EventSourceMapping":
            found.append(f"{mapping} is not an event source mapping")
            continue
        p = props(mapping)
        if p.get("FunctionName") != {"Ref": f"{function}Aliaslive"}:
            found.append(f"{mapping} invokes {p.get('FunctionName')}, not {function}'s alias live")
        if p.get("EventSourceArn") != source:
            found.append(f"{mapping} reads {p.get('EventSourceArn')}, not {source}")
        for key, want in MAPPING_SETTINGS.items():
            if p.get(key) != want:
                found.append(f"{mapping}: {key} is {p.get(key)!r}, not {want!r}")
        filters = [json.loads(f["Pattern"]) for f in p.get("FilterCriteria", {}).get("Filters", [])] or None
        if filters != patterns:
            found.append(f"{mapping} filters {filters}, not {patterns}")
    # The functions' own mappings are the only ones; a SAM Kinesis/DynamoDB event would add a
    # second (and a managed policy on every stream).
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and "Pipeline" in json.dumps(
                resource["Properties"].get("FunctionName")) and name not in PIPELINE_MAPPINGS:
            found.append(f"{name} is another event source mapping of a pipeline function")

    items, results = props("PipelineItemsTable"), props("PipelineResultsTable")
    if items.get("StreamSpecification") != {"StreamViewType": "NEW_IMAGE"}:
        found.append(f"PipelineItemsTable's stream is {items.get('StreamSpecification')}, not NEW_IMAGE")
    if "StreamSpecification" in results:
        found.append("PipelineResultsTable has a stream nothing reads")
    for table, p in (("PipelineItemsTable", items), ("PipelineResultsTable", results)):
        if p.get("TimeToLiveSpecification") != {"AttributeName": "expires", "Enabled": True}:
            found.append(f"{table}'s TTL is {p.get('TimeToLiveSpecification')}, not on expires")
        if p.get("KeySchema") != [{"AttributeName": "id", "KeyType": "HASH"}] or \
                p.get("AttributeDefinitions") != [{"AttributeName": "id", "AttributeType": "S"}]:
            found.append(f"{table} is not keyed by id (S)")
    if props("PipelineStream").get("ShardCount") != {
            "Fn::If": ["PipelineStreamProvisioned", {"Ref": "PipelineShardCount"}, {"Ref": "AWS::NoValue"}]}:
        found.append("PipelineStream's ShardCount is not PipelineShardCount when provisioned and absent on demand")
    if props("PipelineStream").get("StreamModeDetails") != {"StreamMode": {"Ref": "PipelineStreamMode"}}:
        found.append("PipelineStream's mode is not PipelineStreamMode")

    for function, wanted in PIPELINE_POLICIES.items():
        role = props(f"{function}Role")
        extra = set(role.get("ManagedPolicyArns", [])) - ALLOWED_MANAGED_POLICIES
        if extra:
            found.append(f"{function}'s role has managed policies {sorted(extra)}")
        statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
        got = {(tuple(sorted(_as_list(s["Action"]))), json.dumps(s.get("Resource"), sort_keys=True))
               for s in statements if s.get("Effect") == "Allow"}
        want = {(tuple(sorted(actions)), json.dumps(resource, sort_keys=True)) for actions, resource in wanted}
        for actions, resource in sorted(got - want):
            found.append(f"{function} may {list(actions)} on {resource}, which is not only its own call")
        for actions, resource in sorted(want - got):
            found.append(f"{function} may not {list(actions)} on {resource}")
        variables = props(function).get("Environment", {}).get("Variables", {})
        for key, value in PIPELINE_ENVIRONMENT[function].items():
            if variables.get(key) != value:
                found.append(f"{function}'s {key} is {variables.get(key)}, not {value}")
    missing = [name for name in PIPELINE_OUTPUTS if name not in out.get("Outputs", {})]
    if missing:
        found.append(f"outputs missing: {missing}")
    return found


def _run(*command: str) -> list[str]:
    """A tool's complaints ([] when it exits 0)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return []
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()] or \
        [f"{command[0]} exited {done.returncode}"]


def sam_validate_lint(path: Path) -> list[str]:
    tool = test_hosting._tool("sam")
    if tool is None:
        return ["sam is not installed (scripts/bootstrap installs it into .venv)"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "eu-west-2"
    return _run(tool, "validate", "--lint", "--region", region, "--template", str(path))



TEMPLATE_TEXT = (ROOT / "template.yaml").read_text()


class GeneratedTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.out = transform(TEMPLATE_TEXT)

    def test_every_caller_calls_the_live_alias_and_every_serving_function_deploys_gradually(self) -> None:
        self.assertEqual(problems(self.out), [])

    def test_the_checks_notice_a_caller_of_latest_or_a_deployment_without_its_alarm(self) -> None:
        broken = TEMPLATE_TEXT.replace("ParameterValue: !Ref IngestTransformFunction.Alias",
                                       "ParameterValue: !GetAtt IngestTransformFunction.Arn", 1)
        self.assertIn("EventsDeliveryStream's processor", " ".join(problems(transform(broken))))
        broken = TEMPLATE_TEXT.replace("Alarms: [!Ref CalcWorkerErrorsAlarm]", "Alarms: [!Ref HitsErrorsAlarm]", 1)
        self.assertIn("CalcWorkerFunction's deployment does not watch", " ".join(problems(transform(broken))))
        broken = copy.deepcopy(self.out)
        del broken["Resources"]["ProbeFunctionAliaslive"]
        self.assertIn("ProbeFunction has no alias live", " ".join(problems(broken)))
        broken = json.loads(json.dumps(self.out).replace("HitsFunctionAliaslive", "HitsFunction"))
        found = " ".join(problems(broken))
        self.assertIn("the HTTP API route ANY /hits integrates", found)
        self.assertIn("HitsFunctionUrl is not on the alias", found)
        self.assertIn("HitsFunctionWarmer targets", found)

    def test_deployments_follow_the_deployment_type_parameter(self) -> None:
        for kind in ("Canary10Percent5Minutes", "AllAtOnce"):
            out = transform(TEMPLATE_TEXT, {"DeploymentType": kind})
            config = out["Resources"]["HitsFunctionDeploymentGroup"]["Properties"]["DeploymentConfigName"]
            self.assertEqual(config, {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": kind}]})

    def test_the_warmer_is_off_by_default_and_sends_the_warmer_instruction(self) -> None:
        rule = self.out["Resources"]["HitsFunctionWarmer"]["Properties"]
        self.assertEqual(rule["ScheduleExpression"], "rate(5 minutes)")
        self.assertEqual(json.loads(rule["Targets"][0]["Input"]), {"instruction": "warmer"})
        local = stack.Stack(stack.load_template(), "t", {}, "eu-west-2")
        self.assertEqual(local.value(rule["State"]), "DISABLED")
        on = stack.Stack(stack.load_template(), "t", {"Warmer": "on"}, "eu-west-2")
        self.assertEqual(on.value(rule["State"]), "ENABLED")

    def test_tracing_follows_its_parameter_except_where_it_is_switched_off(self) -> None:
        resources = self.out["Resources"]
        for name in ("HitsFunction", "IngestFunction", "CalcWorkerFunction", "PipelineUpstreamFunction",
                     "PipelineMidstreamFunction", "PipelineDownstreamFunction"):
            self.assertEqual(resources[name]["Properties"]["TracingConfig"], {"Mode": {"Ref": "Tracing"}}, name)
        for name in ("ProbeFunction", "IngestTransformFunction"):
            self.assertNotIn("TracingConfig", resources[name]["Properties"], name)


class FrontDoors(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.out = transform(TEMPLATE_TEXT)

    def test_the_http_api_sends_every_request_of_the_hits_contract_to_the_function_or_the_page(self) -> None:
        self.assertEqual(routing_problems(self.out), [])
        # The function routes are ANY routes, so HEAD and wrong methods reach the router.
        routes = http_api_routes(self.out)
        self.assertEqual({k: v for k, v in routes.items() if v == "HitsFunction"},
                         {("ANY", "/hits"): "HitsFunction", ("ANY", "/healthz"): "HitsFunction",
                          ("ANY", "/"): "HitsFunction"})

    def test_the_routing_check_notices_a_narrowed_route_a_lost_page_route_and_a_missing_permission(self) -> None:
        broken = TEMPLATE_TEXT.replace("Method: ANY\n            Path: /hits", "Method: GET\n            Path: /hits", 1)
        found = " ".join(routing_problems(transform(broken)))
        self.assertIn("HEAD /hits reaches no route (404), not HitsFunction", found)
        self.assertIn("POST /hits reaches no route (404)", found)
        broken = copy.deepcopy(self.out)
        del broken["Resources"]["HitsApi"]["Properties"]["Body"]["paths"]["/"]["head"]
        self.assertIn("HEAD / reaches HitsFunction, not page", " ".join(routing_problems(broken)))
        broken = copy.deepcopy(self.out)
        broken["Resources"]["HitsApi"]["Properties"]["Body"]["paths"]["/"][ANY] = {}
        broken["Resources"]["HitsApi"]["Properties"]["Body"]["paths"]["/nope"] = {
            "get": self.out["Resources"]["HitsApi"]["Properties"]["Body"]["paths"]["/hits"][ANY]}
        found = " ".join(routing_problems(broken))
        self.assertIn("POST / reaches no integration, not HitsFunction", found)
        self.assertIn("GET /nope reaches HitsFunction, not no route", found)
        self.assertIn("the route GET /nope may not invoke HitsFunction's alias", found)
        broken = copy.deepcopy(self.out)
        del broken["Resources"]["HitsFunctionHealthzPermission"]
        self.assertEqual(routing_problems(broken), ["the route ANY /healthz may not invoke HitsFunction's alias"])

    def test_cors_on_events_is_the_ingest_routers_with_the_allowed_origins_parameter(self) -> None:
        self.assertEqual(cors_problems(self.out), [])
        self.assertEqual(http_api_routes(self.out)[("ANY", "/events")], "IngestFunction")
        # The parameter's pattern refuses at deploy time what the function would refuse at init
        # (functions/ingest/src/cors.rs), and takes what it takes.
        pattern = self.out["Parameters"]["IngestAllowedOrigins"]["AllowedPattern"]
        for value in ("*", "https://example.com", "https://a.example,http://localhost:8080",
                      "https://a.example, http://localhost:8080", "chrome-extension://abcdef"):
            self.assertRegex(value, pattern)
        for value in ("", "example.com", "https://example.com/", "https://a.example,*", "https://a.example,",
                      "https://"):
            self.assertNotRegex(value, pattern)

    def test_the_cors_check_notices_an_api_cors_configuration_a_url_cors_block_and_a_lost_parameter(self) -> None:
        broken = TEMPLATE_TEXT.replace("  HitsApi:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n",
                                       "  HitsApi:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n"
                                       "      CorsConfiguration:\n        AllowOrigins: ['*']\n", 1)
        self.assertEqual(cors_problems(transform(broken)), ["HitsApi answers CORS itself, over the ingest router's headers"])
        broken = TEMPLATE_TEXT.replace("      CodeUri: target/lambda/ingest/\n",
                                       "      CodeUri: target/lambda/ingest/\n      FunctionUrlConfig:\n"
                                       "        AuthType: NONE\n        Cors:\n          AllowOrigins: ['*']\n", 1)
        self.assertEqual(cors_problems(transform(broken)),
                         ["IngestFunctionUrl answers CORS itself, over the ingest router's headers"])
        broken = TEMPLATE_TEXT.replace("INGEST_ALLOWED_ORIGINS: !Ref IngestAllowedOrigins", "INGEST_ALLOWED_ORIGINS: '*'", 1)
        self.assertIn("not the IngestAllowedOrigins parameter", " ".join(cors_problems(transform(broken))))
        broken = TEMPLATE_TEXT.replace("Method: ANY\n            Path: /events", "Method: POST\n            Path: /events", 1)
        self.assertIn("OPTIONS /events reaches no route (404), not IngestFunction",
                      " ".join(routing_problems(transform(broken))))

    def test_post_calc_answers_200_with_the_message_id_from_a_deployment_made_after_the_method(self) -> None:
        self.assertEqual(calc_problems(self.out), [])

    def test_the_calc_check_notices_a_202_a_lost_message_id_and_a_stale_deployment(self) -> None:
        broken = TEMPLATE_TEXT.replace('- StatusCode: "200"\n            SelectionPattern', '- StatusCode: "202"\n            SelectionPattern', 1)
        self.assertIn("answered ['202'], not 200", " ".join(calc_problems(transform(broken))))
        broken = TEMPLATE_TEXT.replace("$.SendMessageResponse.SendMessageResult.MessageId", "$.nothing", 1)
        self.assertEqual(calc_problems(transform(broken)), ["the 200 does not carry the message id"])
        broken = copy.deepcopy(self.out)
        broken["Resources"]["CalcPostMethod"]["Properties"]["MethodResponses"][0]["StatusCode"] = "202"
        self.assertIn("the method declares ['202', '502']", " ".join(calc_problems(broken)))
        broken = copy.deepcopy(self.out)
        deployment = broken["Resources"]["CalcApiStage"]["Properties"]["DeploymentId"]["Ref"]
        broken["Resources"][deployment]["DependsOn"].remove("CalcPostMethod")
        self.assertEqual(calc_problems(broken), ["CalcApi's stage does not serve a deployment made after CalcPostMethod"])


class Pipeline(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.out = transform(TEMPLATE_TEXT)

    def test_the_pipeline_mappings_tables_policies_environment_and_outputs_are_wired_as_documented(self) -> None:
        self.assertEqual(pipeline_problems(self.out), [])

    def test_post_items_and_the_function_url_reach_upstreams_live_alias(self) -> None:
        routes = http_api_routes(self.out)
        self.assertEqual({k: v for k, v in routes.items() if v == "PipelineUpstreamFunction"},
                         {("POST", "/items"): "PipelineUpstreamFunction"})
        self.assertEqual(routing_problems(self.out), [])  # and API Gateway may invoke the alias
        self.assertEqual(self.out["Resources"]["PipelineUpstreamFunctionUrl"]["Properties"]["TargetFunctionArn"],
                         {"Ref": "PipelineUpstreamFunctionAliaslive"})
        self.assertEqual(self.out["Outputs"]["PipelineFunctionUrl"]["Value"],
                         {"Fn::GetAtt": ["PipelineUpstreamFunctionUrl", "FunctionUrl"]})

    def test_the_pipeline_check_notices_a_lost_setting_filter_destination_or_a_wider_policy(self) -> None:
        # The midstream mapping comes first in the template: count=1 breaks it alone.
        cases = {
            "FunctionResponseTypes: [ReportBatchItemFailures]\n      BisectBatchOnFunctionError": (
                "BisectBatchOnFunctionError", "PipelineMidstreamEventSource: FunctionResponseTypes is None"),
            "BisectBatchOnFunctionError: true": (
                "BisectBatchOnFunctionError: false", "PipelineMidstreamEventSource: BisectBatchOnFunctionError"),
            "StartingPosition: LATEST": (
                "StartingPosition: TRIM_HORIZON", "PipelineMidstreamEventSource: StartingPosition is 'TRIM_HORIZON'"),
            "MaximumBatchingWindowInSeconds: 0\n      BatchSize": (
                "MaximumBatchingWindowInSeconds: 5\n      BatchSize", "MaximumBatchingWindowInSeconds is 5"),
            """'{"eventName": ["INSERT"]}'""": (
                """'{"eventName": ["INSERT", "MODIFY"]}'""", "PipelineDownstreamEventSource filters"),
            "StreamViewType: NEW_IMAGE": ("StreamViewType: KEYS_ONLY", "PipelineItemsTable's stream is"),
            "Resource: !GetAtt PipelineStream.Arn": ('Resource: "*"', "PipelineUpstreamFunction may ["),
            "Action: dynamodb:PutItem\n              Resource: !GetAtt PipelineItemsTable.Arn": (
                "Action: [dynamodb:PutItem, dynamodb:DeleteItem]\n              Resource: !GetAtt PipelineItemsTable.Arn",
                "PipelineMidstreamFunction may ['dynamodb:DeleteItem', 'dynamodb:PutItem']"),
            "PIPELINE_RESULTS_TABLE: !Ref PipelineResultsTable": (
                "PIPELINE_RESULTS_TABLE: !Ref PipelineItemsTable", "PipelineDownstreamFunction's PIPELINE_RESULTS_TABLE"),
        }
        for old, (new, message) in cases.items():
            with self.subTest(old=old):
                self.assertIn(old, TEMPLATE_TEXT)
                found = " | ".join(pipeline_problems(transform(TEMPLATE_TEXT.replace(old, new, 1))))
                self.assertIn(message, found)
        broken = TEMPLATE_TEXT.replace(
            "      DestinationConfig:\n        OnFailure:\n          Destination: !GetAtt PipelineFailureQueue.Arn\n", "", 1)
        self.assertIn("PipelineMidstreamEventSource: DestinationConfig is None", " ".join(pipeline_problems(transform(broken))))
        broken = TEMPLATE_TEXT.replace("FunctionName: !Ref PipelineDownstreamFunction.Alias",
                                       "FunctionName: !Ref PipelineDownstreamFunction", 1)
        found = " ".join(pipeline_problems(transform(broken)) + problems(transform(broken)))
        self.assertIn("PipelineDownstreamEventSource invokes", found)
        self.assertIn("PipelineDownstreamEventSource (event source) does not call the alias", found)
        # What a SAM Kinesis event would do: a managed policy on every stream, a second mapping.
        broken = copy.deepcopy(self.out)
        broken["Resources"]["PipelineMidstreamFunctionRole"]["Properties"]["ManagedPolicyArns"].append(
            "arn:aws:iam::aws:policy/service-role/AWSLambdaKinesisExecutionRole")
        broken["Resources"]["PipelineMidstreamFunctionStream"] = copy.deepcopy(
            broken["Resources"]["PipelineMidstreamEventSource"])
        found = " ".join(pipeline_problems(broken))
        self.assertIn("PipelineMidstreamFunction's role has managed policies", found)
        self.assertIn("PipelineMidstreamFunctionStream is another event source mapping", found)
        broken = copy.deepcopy(self.out)
        del broken["Outputs"]["PipelineFailureQueueUrl"]
        self.assertEqual(pipeline_problems(broken), ["outputs missing: ['PipelineFailureQueueUrl']"])
        broken = TEMPLATE_TEXT.replace("Alarms: [!Ref PipelineMidstreamErrorsAlarm]", "Alarms: [!Ref HitsErrorsAlarm]", 1)
        self.assertIn("PipelineMidstreamFunction's deployment does not watch", " ".join(problems(transform(broken))))

    def test_the_stream_takes_a_shard_count_only_when_provisioned(self) -> None:
        template = stack.load_template()
        properties = template["Resources"]["PipelineStream"]["Properties"]
        provisioned = stack.Stack(template, "t", {"PipelineShardCount": "4"}, "eu-west-2").value(properties)
        self.assertEqual((provisioned["StreamModeDetails"], provisioned["ShardCount"]),
                         ({"StreamMode": "PROVISIONED"}, "4"))
        on_demand = stack.Stack(template, "t", {"PipelineStreamMode": "ON_DEMAND"}, "eu-west-2").value(properties)
        self.assertEqual(on_demand["StreamModeDetails"], {"StreamMode": "ON_DEMAND"})
        self.assertNotIn("ShardCount", on_demand)
        self.assertEqual(pipeline_problems(transform(TEMPLATE_TEXT, {"PipelineStreamMode": "ON_DEMAND"})), [])


class Lint(unittest.TestCase):
    """cfn-lint and `sam validate --lint` on template.yaml (scripts/test runs them on every template)."""

    def test_cfn_lint_and_sam_validate_lint_pass(self) -> None:
        path = ROOT / "template.yaml"
        self.assertEqual(test_hosting.cfn_lint(path), [])
        self.assertEqual(sam_validate_lint(path), [])

    def test_the_linters_catch_a_misspelt_mapping_property(self) -> None:
        broken = TEMPLATE_TEXT.replace("ParallelizationFactor: !Ref PipelineParallelizationFactor",
                                       "ParallelisationFactor: !Ref PipelineParallelizationFactor", 1)
        self.assertNotEqual(broken, TEMPLATE_TEXT)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "template.yaml"
            path.write_text(broken)
            self.assertTrue(any("ParallelisationFactor" in p for p in test_hosting.cfn_lint(path)))
            self.assertTrue(any("ParallelisationFactor" in p for p in sam_validate_lint(path)))


class ReplicaRegions(unittest.TestCase):
    def stack(self, **parameters: str) -> stack.Stack:
        return stack.Stack(stack.load_template(), "t", parameters, "eu-west-2")

    def test_no_replica_regions_creates_a_plain_table(self) -> None:
        s = self.stack()
        self.assertTrue(s.exists("CounterTable"))
        self.assertFalse(s.exists("CounterGlobalTable"))
        self.assertEqual(s.environment("HitsFunction")["HITS_STORE"], "dynamodb:t-countertable")

    def test_replica_regions_make_a_global_table_replicated_there(self) -> None:
        template = stack.load_template()
        for regions, expected, shard in (("us-east-1", ["eu-west-2", "us-east-1"], "#0/2"),
                                         ("us-east-1, ap-southeast-2", ["eu-west-2", "us-east-1", "ap-southeast-2"],
                                          "#0/3")):
            s = stack.Stack(template, "t", {"ReplicaRegions": regions}, "eu-west-2")
            self.assertFalse(s.exists("CounterTable"))
            self.assertTrue(s.exists("CounterGlobalTable"))
            replicas = s.value(template["Resources"]["CounterGlobalTable"]["Properties"]["Replicas"])
            self.assertEqual([r["Region"] for r in replicas], expected)
            spec = template["Resources"]["CounterGlobalTable"]["Properties"]["StreamSpecification"]
            self.assertEqual(spec["StreamViewType"], "NEW_AND_OLD_IMAGES")
            # Each region adds to its own item: last-writer-wins cannot lose an increment.
            self.assertEqual(s.environment("HitsFunction")["HITS_STORE"], f"dynamodb:t-counterglobaltable{shard}")

    def test_a_replica_region_uses_the_existing_table_and_may_only_touch_it(self) -> None:
        template = stack.load_template()
        s = stack.Stack(template, "t", {"ExistingCounterTable": "hits-CounterGlobalTable-1", "CounterShard": "1/2"},
                        "us-east-1")
        self.assertFalse(s.exists("CounterTable") or s.exists("CounterGlobalTable"))
        self.assertEqual(s.environment("HitsFunction")["HITS_STORE"], "dynamodb:hits-CounterGlobalTable-1#1/2")
        policy = s.value(template["Resources"]["HitsFunction"]["Properties"]["Policies"])
        resources = [st["Resource"] for st in policy[0]["Statement"]]
        self.assertEqual(resources,
                         ["arn:aws:dynamodb:us-east-1:123456789012:table/hits-CounterGlobalTable-1"])

    def test_the_generated_template_passes_sam_with_replicas(self) -> None:
        out = transform(TEMPLATE_TEXT, {"ReplicaRegions": "us-east-1"})
        self.assertEqual(problems(out), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
