#!/usr/bin/env python3
"""Self-test of scripts/stack.py against moto (plain unittest, no pytest).

    .venv/bin/python scripts/test_stack.py        (or just scripts/test_stack.py)

Uses the moto at AWS_ENDPOINT_URL when set (scripts/test exports it); otherwise starts one with
scripts/moto and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import boto3  # noqa: E402
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
