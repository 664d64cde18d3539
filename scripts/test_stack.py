#!/usr/bin/env python3
"""Self-test of scripts/stack.py and scripts/calc_api.py against moto (plain unittest; pytest runs it too).

    .venv/bin/python scripts/test_stack.py        (or just scripts/test_stack.py)

Uses the moto at AWS_ENDPOINT_URL when set (scripts/test exports it); otherwise starts one with
scripts/moto and stops it afterwards.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import boto3  # noqa: E402
import calc_api  # noqa: E402
import stack  # noqa: E402

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or stack.DEFAULT_REGION

_moto_pidfile: Path | None = None
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")


def setUpModule() -> None:  # noqa: N802 (unittest's name)
    global ENDPOINT, _moto_pidfile
    if ENDPOINT:
        return
    _moto_pidfile = Path(tempfile.mkdtemp(prefix="test-stack-")) / "moto.pid"
    started = subprocess.run([str(ROOT / "scripts/moto"), "start", str(_moto_pidfile)],
                             check=True, capture_output=True, text=True)
    ENDPOINT = started.stdout.strip()


def tearDownModule() -> None:  # noqa: N802
    if _moto_pidfile is not None:
        subprocess.run([str(ROOT / "scripts/moto"), "stop", str(_moto_pidfile)], check=False)
        shutil.rmtree(_moto_pidfile.parent, ignore_errors=True)


def run(*args: str) -> tuple[int, str, str]:
    """Runs stack.main with `args`; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = stack.main(["--endpoint", ENDPOINT, *args])
    return code, out.getvalue(), err.getvalue()


def unique_prefix(label: str) -> str:
    return f"t{label}{os.getpid()}{time.time_ns() % 10**9}"


class StackAgainstMoto(unittest.TestCase):
    def setUp(self) -> None:
        self.dynamodb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION)
        self.s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)

    def test_store_dynamodb_creates_the_table_keyed_by_id_n_and_emits_its_name(self) -> None:
        prefix = unique_prefix("d")
        code, out, err = run("--store", "dynamodb", "--prefix", prefix)
        self.assertEqual(code, 0, err)
        table = f"{prefix}-countertable"
        self.assertEqual(out, f"NO_COLOR=1\nHITS_STORE=dynamodb:{table}\n")
        described = self.dynamodb.describe_table(TableName=table)["Table"]
        self.assertEqual(described["KeySchema"], [{"AttributeName": "id", "KeyType": "HASH"}])
        self.assertEqual(described["AttributeDefinitions"], [{"AttributeName": "id", "AttributeType": "N"}])
        self.assertEqual(described["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")
        buckets = {b["Name"] for b in self.s3.list_buckets()["Buckets"]}
        self.assertNotIn(f"{prefix}-counterbucket", buckets, "Store=dynamodb creates no counter bucket")
        self.assertIn(f"{prefix}-pagebucket", buckets, "the unconditional page bucket exists")

    def test_store_s3_creates_the_bucket_and_emits_the_count_key_in_it(self) -> None:
        prefix = unique_prefix("s")
        code, out, err = run("--store", "s3", "--prefix", prefix)
        self.assertEqual(code, 0, err)
        bucket = f"{prefix}-counterbucket"
        self.assertEqual(out, f"NO_COLOR=1\nHITS_STORE=s3:{bucket}/hits/count\n")
        self.s3.head_bucket(Bucket=bucket)
        tables = self.dynamodb.list_tables()["TableNames"]
        self.assertNotIn(f"{prefix}-countertable", tables, "Store=s3 creates no table")

    def test_running_twice_with_the_same_prefix_is_fine_and_writes_the_env_file(self) -> None:
        prefix = unique_prefix("i")
        with tempfile.TemporaryDirectory() as tmp:
            env_file = Path(tmp) / "hits.env"
            for _ in range(2):
                code, out, err = run("--store", "dynamodb", "--prefix", prefix, "--env-file", str(env_file))
                self.assertEqual(code, 0, err)
                self.assertEqual(out, "")
            self.assertIn(f"kept table {prefix}-countertable", err)
            self.assertEqual(env_file.read_text(), f"NO_COLOR=1\nHITS_STORE=dynamodb:{prefix}-countertable\n")

    def test_calc_worker_environment_queues_ttl_and_outputs_come_from_the_template(self) -> None:
        prefix = unique_prefix("q")
        with tempfile.TemporaryDirectory() as tmp:
            outputs_file = Path(tmp) / "outputs.json"
            code, out, err = run("--prefix", prefix, "--function", "CalcWorkerFunction", "--outputs", str(outputs_file))
            self.assertEqual(code, 0, err)
            document = json.loads(outputs_file.read_text())
        self.assertEqual(out, f"NO_COLOR=1\nCALC_TABLE={prefix}-calctable\n"
                              f"CALC_MESSAGES_TABLE={prefix}-calcmessagestable\nCALC_MAX_X=10\nRUST_LOG=info\n")
        self.assertLess(err.index(f"created queue {prefix}-calcdeadletterqueue"),
                        err.index(f"created queue {prefix}-calcqueue"), "the dead-letter queue comes first")
        sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION)
        queue_url = sqs.get_queue_url(QueueName=f"{prefix}-calcqueue")["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=f"{prefix}-calcdeadletterqueue")["QueueUrl"]
        queue = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(queue["VisibilityTimeout"], "180")
        self.assertEqual(json.loads(queue["RedrivePolicy"]),
                         {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 3})
        self.assertEqual(dlq["MessageRetentionPeriod"], "1209600")
        ttl = self.dynamodb.describe_time_to_live(TableName=f"{prefix}-calcmessagestable")["TimeToLiveDescription"]
        self.assertEqual((ttl["TimeToLiveStatus"], ttl["AttributeName"]), ("ENABLED", "expires_at"))
        key = self.dynamodb.describe_table(TableName=f"{prefix}-calcmessagestable")["Table"]["KeySchema"]
        self.assertEqual(key, [{"AttributeName": "message_id", "KeyType": "HASH"}])
        calc = document["calc"]
        self.assertEqual(document["endpoint"], ENDPOINT)
        self.assertEqual((calc["queue_url"], calc["dead_letter_queue_url"]), (queue_url, dlq_url))
        self.assertEqual((calc["table"], calc["messages_table"]), (f"{prefix}-calctable", f"{prefix}-calcmessagestable"))
        self.assertEqual((calc["max_x"], calc["max_receive_count"], calc["batch_size"], calc["max_concurrency"]),
                         (10, 3, 10, 50))
        self.assertEqual((calc["method"], calc["path"]), ("POST", "/v1/calc"))
        self.assertEqual(calc["request_schema"]["properties"]["x"], {"type": "number", "minimum": 0, "maximum": 10})
        # Again: everything is kept, and a kept queue gets the template's attributes back.
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "5"})
        code, _, err = run("--prefix", prefix, "--function", "CalcWorkerFunction")
        self.assertEqual(code, 0, err)
        self.assertIn(f"kept queue {prefix}-calcqueue", err)
        self.assertEqual(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
                         ["Attributes"]["VisibilityTimeout"], "180")

    def test_the_pipeline_stream_tables_and_failure_queue_are_created_as_the_template_declares(self) -> None:
        prefix = unique_prefix("p")
        code, out, err = run("--prefix", prefix, "--function", "PipelineMidstreamFunction")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, f"NO_COLOR=1\nPIPELINE_ITEMS_TABLE={prefix}-pipelineitemstable\n")
        kinesis = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name=REGION)
        summary = kinesis.describe_stream_summary(StreamName=f"{prefix}-pipelinestream")["StreamDescriptionSummary"]
        self.assertEqual((summary["StreamModeDetails"]["StreamMode"], summary["OpenShardCount"]), ("PROVISIONED", 1))
        items = self.dynamodb.describe_table(TableName=f"{prefix}-pipelineitemstable")["Table"]
        self.assertEqual(items["KeySchema"], [{"AttributeName": "id", "KeyType": "HASH"}])
        self.assertEqual(items["AttributeDefinitions"], [{"AttributeName": "id", "AttributeType": "S"}])
        self.assertEqual(items["StreamSpecification"], {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        self.assertIn("/stream/", items["LatestStreamArn"])
        results = self.dynamodb.describe_table(TableName=f"{prefix}-pipelineresultstable")["Table"]
        self.assertNotIn("StreamSpecification", results)
        for table in ("pipelineitemstable", "pipelineresultstable"):
            ttl = self.dynamodb.describe_time_to_live(TableName=f"{prefix}-{table}")["TimeToLiveDescription"]
            self.assertEqual((ttl["TimeToLiveStatus"], ttl["AttributeName"]), ("ENABLED", "expires"), table)
        sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION)
        queue_url = sqs.get_queue_url(QueueName=f"{prefix}-pipelinefailurequeue")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(attributes["MessageRetentionPeriod"], "1209600")
        # Again: all kept. Another shard count on the kept stream is refused, as another key is.
        code, _, err = run("--prefix", prefix, "--function", "PipelineMidstreamFunction")
        self.assertEqual(code, 0, err)
        self.assertIn(f"kept stream {prefix}-pipelinestream (PROVISIONED, 1 shard)", err)
        self.assertIn(f"kept table {prefix}-pipelineitemstable (stream NEW_IMAGE)", err)
        code, out, err = run("--prefix", prefix, "--parameter", "PipelineShardCount=2")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("exists as PROVISIONED with 1 shards, the template wants PROVISIONED with 2", err)

    def test_an_on_demand_stream_has_no_shard_count_and_a_kept_table_gets_its_stream(self) -> None:
        prefix = unique_prefix("o")
        # A table from before the stream was in the template: same key, no stream.
        self.dynamodb.create_table(TableName=f"{prefix}-pipelineitemstable", BillingMode="PAY_PER_REQUEST",
                                   KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        code, _, err = run("--prefix", prefix, "--parameter", "PipelineStreamMode=ON_DEMAND")
        self.assertEqual(code, 0, err)
        self.assertIn(f"created stream {prefix}-pipelinestream (ON_DEMAND)", err)
        self.assertIn(f"kept table {prefix}-pipelineitemstable (stream enabled)", err)
        kinesis = boto3.client("kinesis", endpoint_url=ENDPOINT, region_name=REGION)
        summary = kinesis.describe_stream_summary(StreamName=f"{prefix}-pipelinestream")["StreamDescriptionSummary"]
        self.assertEqual(summary["StreamModeDetails"]["StreamMode"], "ON_DEMAND")
        items = self.dynamodb.describe_table(TableName=f"{prefix}-pipelineitemstable")["Table"]
        self.assertEqual(items["StreamSpecification"], {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})

    def test_the_pipeline_outputs_name_the_local_urls_the_resources_and_both_mappings(self) -> None:
        prefix = unique_prefix("po")
        with tempfile.TemporaryDirectory() as tmp:
            outputs_file = Path(tmp) / "outputs.json"
            code, _, err = run("--prefix", prefix, "--outputs", str(outputs_file), "--lambda-port", "9123",
                               "--parameter", "PipelineBatchSize=10", "--parameter", "PipelineParallelizationFactor=4")
            self.assertEqual(code, 0, err)
            pipeline = json.loads(outputs_file.read_text())["pipeline"]
            code, _, err = run("--prefix", prefix, "--outputs", str(outputs_file))
            self.assertEqual(code, 0, err)
            without_port = json.loads(outputs_file.read_text())["pipeline"]
        sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION)
        queue_url = sqs.get_queue_url(QueueName=f"{prefix}-pipelinefailurequeue")["QueueUrl"]
        self.assertEqual((pipeline["url"], pipeline["function_url"]),
                         ("http://127.0.0.1:9123/lambda-url/pipeline-upstream/items",
                          "http://127.0.0.1:9123/lambda-url/pipeline-upstream/"))
        self.assertEqual((without_port["url"], without_port["function_url"]), (None, None))
        self.assertEqual((pipeline["stream"], pipeline["stream_mode"], pipeline["shard_count"]),
                         (f"{prefix}-pipelinestream", "PROVISIONED", 1))
        self.assertEqual((pipeline["items_table"], pipeline["results_table"], pipeline["failure_queue_url"]),
                         (f"{prefix}-pipelineitemstable", f"{prefix}-pipelineresultstable", queue_url))
        self.assertEqual(pipeline["metrics_namespace"], f"Pipeline/{prefix}")
        self.assertEqual(pipeline["functions"], {"upstream": "pipeline-upstream", "midstream": "pipeline-midstream",
                                                 "downstream": "pipeline-downstream"})
        shared = {"starting_position": "LATEST", "batch_size": 10, "batching_window_seconds": 0,
                  "parallelization_factor": 4, "bisect_on_error": True, "report_batch_item_failures": True,
                  "maximum_retry_attempts": 3, "maximum_record_age_seconds": 3600, "on_failure_queue_url": queue_url}
        self.assertEqual(pipeline["midstream"], {"source": "kinesis", "stream": f"{prefix}-pipelinestream",
                                                 "function": "pipeline-midstream", "filters": [], **shared})
        self.assertEqual(pipeline["downstream"], {"source": "dynamodb-streams", "table": f"{prefix}-pipelineitemstable",
                                                  "function": "pipeline-downstream",
                                                  "filters": [{"eventName": ["INSERT"]}], **shared})
        self.assertEqual(without_port["midstream"]["batch_size"], 100, "the parameter's default")

    def test_what_cloudformation_would_refuse_is_refused(self) -> None:
        cases = [
            (["--parameter", "CalcBatchSize=11"], "rule CalcBatchingWindowForLargeBatches fails"),
            (["--parameter", "MaxX=841"], "MaxX=841 is outside 0..840"),
            (["--parameter", "CalcTimeout=ten"], "is not a number"),
            (["--parameter", "CalcTimeout=10", "--outputs", "/dev/null"], "CalcTimeout=10 must exceed MaxX=10"),
            (["--parameter", "CalcVisibilityTimeout=20", "--outputs", "/dev/null"], "Lambda refuses"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                code, out, err = run("--prefix", unique_prefix("r"), *args)
                self.assertEqual((code, out), (2, ""))
                self.assertIn(message, err)
        # Above 10 with a batching window is fine; 6 x CalcTimeout is only a recommendation.
        code, _, err = run("--prefix", unique_prefix("r"), "--parameter", "CalcBatchSize=100",
                           "--parameter", "CalcBatchingWindowSeconds=1", "--parameter", "CalcVisibilityTimeout=60",
                           "--outputs", os.devnull)
        self.assertEqual(code, 0, err)
        self.assertIn("warning: CalcVisibilityTimeout=60 is below 6 x CalcTimeout", err)

    def test_a_store_the_template_does_not_allow_is_refused(self) -> None:
        code, out, err = run("--store", "redis", "--prefix", unique_prefix("x"))
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("not one of ['dynamodb', 's3']", err)


class Evaluation(unittest.TestCase):
    """The evaluator on its own (no emulator calls)."""

    def test_short_tags_load_as_their_long_form(self) -> None:
        template = stack.load_template()
        hits_store = template["Resources"]["HitsFunction"]["Properties"]["Environment"]["Variables"]["HITS_STORE"]
        self.assertEqual(list(hits_store), ["Fn::If"])
        self.assertEqual(hits_store["Fn::If"][1], {"Fn::Sub": "s3:${CounterBucket}/hits/count"})
        self.assertEqual(template["Conditions"]["UseDynamoDb"], {"Fn::Not": [{"Condition": "UseS3"}]})

    def test_get_att_sub_select_join_and_no_value_resolve_against_local_names(self) -> None:
        s = stack.Stack(stack.load_template(), "p", {"Store": "s3"}, "eu-west-2")
        self.assertEqual(s.value({"Fn::GetAtt": ["CounterBucket", "Arn"]}), "arn:aws:s3:::p-counterbucket")
        self.assertEqual(s.value({"Fn::Sub": "${CounterBucket.Arn}/x ${!Literal} ${AWS::Region}"}),
                         "arn:aws:s3:::p-counterbucket/x ${Literal} eu-west-2")
        self.assertEqual(s.value({"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}), "b")
        self.assertEqual(s.value({"Fn::Join": ["-", ["a", {"Ref": "Store"}]]}), "a-s3")
        self.assertEqual(s.value({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}), {"B": [1]})
        with self.assertRaises(stack.StackError):
            s.value({"Ref": "CounterTable"})  # does not exist when Store=s3

    def test_queues_resolve_as_in_cloudformation_and_come_after_their_dead_letter_queue(self) -> None:
        s = stack.Stack(stack.load_template(), "p", {}, "eu-west-2")
        self.assertEqual(s.value({"Ref": "CalcQueue"}), "https://sqs.eu-west-2.amazonaws.com/123456789012/p-calcqueue")
        self.assertEqual(s.value({"Fn::GetAtt": ["CalcDeadLetterQueue", "Arn"]}),
                         "arn:aws:sqs:eu-west-2:123456789012:p-calcdeadletterqueue")
        self.assertEqual(s.value({"Fn::Sub": "${CalcQueue.QueueName}"}), "p-calcqueue")
        local = stack.Stack(stack.load_template(), "p", {}, "eu-west-2", "http://127.0.0.1:5000/")
        self.assertEqual(local.value({"Fn::GetAtt": ["CalcQueue", "QueueUrl"]}),
                         "http://127.0.0.1:5000/123456789012/p-calcqueue")
        order = [logical_id for logical_id, _ in s.local_resources()]
        self.assertLess(order.index("CalcDeadLetterQueue"), order.index("CalcQueue"))
        properties = s.value(s.template["Resources"]["CalcQueue"]["Properties"])
        self.assertEqual(properties["RedrivePolicy"]["deadLetterTargetArn"],
                         "arn:aws:sqs:eu-west-2:123456789012:p-calcdeadletterqueue")

    def test_functions_resolve_to_their_binaries_and_the_pipelines_environment_to_local_names(self) -> None:
        s = stack.Stack(stack.load_template(), "p", {}, "eu-west-2")
        self.assertEqual(s.value({"Ref": "PipelineUpstreamFunction"}), "pipeline-upstream")
        self.assertEqual(s.value({"Ref": "PipelineMidstreamFunction.Alias"}), "pipeline-midstream")
        self.assertEqual(s.value({"Ref": "HitsFunction"}), "hits")
        self.assertEqual(s.value({"Fn::GetAtt": ["PipelineStream", "Arn"]}),
                         "arn:aws:kinesis:eu-west-2:123456789012:stream/p-pipelinestream")
        self.assertEqual(s.environment("PipelineUpstreamFunction"), {"NO_COLOR": "1", "PIPELINE_STREAM": "p-pipelinestream"})
        self.assertEqual(s.environment("PipelineDownstreamFunction"),
                         {"NO_COLOR": "1", "PIPELINE_RESULTS_TABLE": "p-pipelineresultstable",
                          "PIPELINE_METRICS_NAMESPACE": "Pipeline/p"})
        self.assertEqual(s.http_api_paths("PipelineUpstreamFunction"), ["/items"])
        with self.assertRaises(stack.StackError):
            s.event_source_mapping("PipelineMidstreamFunction")  # a function, not a mapping
        with self.assertRaises(stack.StackError):
            s.value({"Fn::GetAtt": ["PipelineItemsTable", "StreamArn"]})  # the emulator's, not knowable here

    def test_the_calc_route_and_schema_follow_the_parameters(self) -> None:
        s = stack.Stack(stack.load_template(), "p", {"MaxX": "2.5"}, "eu-west-2")
        method, path, models = s.rest_method(stack.CALC_METHOD)
        self.assertEqual((method, path), ("POST", "/v1/calc"))
        self.assertEqual(models["application/json"]["properties"]["x"]["maximum"], 2.5)
        self.assertEqual(models["application/json"]["required"], ["x"])
        responses = s.gateway_responses(stack.CALC_METHOD)
        self.assertEqual(responses["BAD_REQUEST_BODY"][0], 400)
        self.assertEqual(responses["UNSUPPORTED_MEDIA_TYPE"][0], 415)


def post(url: str, body: str, content_type: str | None = "application/json") -> tuple[int, dict]:
    """POSTs `body` (without a Content-Type header when it is None); returns (status, JSON answer)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        headers = {} if content_type is None else {"Content-Type": content_type}
        connection.request("POST", parts.path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class CalcApiAgainstMoto(unittest.TestCase):
    """scripts/calc_api.py: POST /v1/calc validated as CalcModel says, then onto the queue."""

    def setUp(self) -> None:
        self.sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName=unique_prefix("api"))["QueueUrl"]
        self.server, self.url = calc_api.make_server(ENDPOINT, self.queue_url)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sqs.delete_queue(QueueUrl=self.queue_url)

    def messages(self) -> list[dict]:
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            found += batch
        return found

    def test_a_valid_request_is_queued_as_it_came_and_answered_200_with_the_message_id(self) -> None:
        self.assertTrue(self.url.endswith("/v1/calc"), self.url)
        body = '{"x": 1.5, "note": "other members pass"}'
        status, answer = post(self.url, body)
        self.assertEqual(status, 200, answer)
        [message] = self.messages()
        self.assertEqual((message["MessageId"], message["Body"]), (answer["messageId"], body))
        for edge in ('{"x": 0}', '{"x": 10}'):
            self.assertEqual(post(self.url, edge)[0], 200, edge)
        # No Content-Type is JSON, as in API Gateway; parameters of the media type are fine.
        self.assertEqual(post(self.url, '{"x": 1}', None)[0], 200)
        self.assertEqual(post(self.url, '{"x": 1}', "application/json; charset=utf-8")[0], 200)

    def test_bodies_the_model_refuses_are_400_with_a_reason_and_not_queued(self) -> None:
        cases = {
            '{"x": 10.001}': "maximum",
            '{"x": -1}': "minimum",
            "{}": "'x' is a required property",
            '{"x": "1"}': "not of type 'number'",
            '{"x": true}': "not of type 'number'",
            "[1]": "not of type 'object'",
            '{"x": 1': "Invalid JSON",
            '{"x": NaN}': "Invalid JSON",
            "": "Invalid JSON",
        }
        for body, reason in cases.items():
            with self.subTest(body=body):
                status, answer = post(self.url, body)
                self.assertEqual(status, 400, answer)
                self.assertIn(reason, answer["message"])
        self.assertEqual(self.messages(), [])

    def test_other_content_types_are_415_and_other_paths_404(self) -> None:
        status, answer = post(self.url, '{"x": 1}', "text/plain")
        self.assertEqual((status, answer), (415, {"message": "Content-Type must be application/json"}))
        self.assertEqual(post(self.url.replace("/calc", "/other"), '{"x": 1}')[0], 404)
        self.assertEqual(self.messages(), [])

    def test_a_queue_that_fails_is_502(self) -> None:
        self.sqs.delete_queue(QueueUrl=self.queue_url)
        status, answer = post(self.url, '{"x": 1}')
        self.assertEqual(status, 502)
        self.assertIn("queue", answer["message"])
        self.queue_url = self.sqs.create_queue(QueueName=unique_prefix("api"))["QueueUrl"]  # for tearDown

    def test_a_hundred_concurrent_requests_are_all_queued(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            answers = list(pool.map(lambda i: post(self.url, json.dumps({"x": i / 100})), range(100)))
        self.assertEqual([status for status, _ in answers], [200] * 100)
        self.assertEqual(len({answer["messageId"] for _, answer in answers}), 100)
        self.assertEqual(sorted(json.loads(m["Body"])["x"] for m in self.messages()), [i / 100 for i in range(100)])

    def test_the_command_line_serves_the_stacks_queue_and_the_max_x_it_is_given(self) -> None:
        prefix = unique_prefix("cli")
        with tempfile.TemporaryDirectory() as tmp:
            outputs_file = Path(tmp) / "outputs.json"
            code, _, err = run("--prefix", prefix, "--outputs", str(outputs_file))
            self.assertEqual(code, 0, err)
            queue_url = json.loads(outputs_file.read_text())["calc"]["queue_url"]
        process = subprocess.Popen([str(ROOT / "scripts/calc_api.py"), "--endpoint", ENDPOINT, "--queue-url", queue_url,
                                    "--port", "0", "--max-x", "2"], stdout=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            self.assertRegex(line, r"^listening on http://127\.0\.0\.1:\d+/v1/calc$")
            url = line.split()[-1]
            self.assertEqual(post(url, '{"x": 3}')[0], 400, "--max-x 2 is the schema's maximum")
            status, answer = post(url, '{"x": 2}')
            self.assertEqual(status, 200, answer)
            [message] = self.sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
            self.assertEqual(message["MessageId"], answer["messageId"])
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
