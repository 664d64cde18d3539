#!/usr/bin/env python3
"""A seed-shaped RabbitMQ client (scripts/rpc_client.py, pika) against `calc-worker-server` on a
private RabbitMQ broker: every call is answered with its x, a bad body with an error reply.
Plain unittest (pytest runs it too):

    .venv/bin/python scripts/test_rpc_client.py      (or: .venv/bin/python -m pytest scripts/test_rpc_client.py)

Uses the broker at CALC_TEST_AMQP_URL when set (scripts/test exports it); otherwise starts one
with scripts/rabbitmq and stops it afterwards. Builds the worker with cargo (debug) unless
CALC_WORKER_SERVER names a binary. Without pika (requirements-dev.txt) or Debian's
rabbitmq-server it skips, saying so — unless TEST_REQUIRE_ALL=1, when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
REQUIRED = os.environ.get("TEST_REQUIRE_ALL") == "1"

try:
    import pika  # noqa: F401
    import rpc_client
    MISSING = ""
except ImportError as e:  # pragma: no cover (depends on the machine)
    MISSING = f"pika is not installed ({e}): pip install -r requirements-dev.txt"

BROKER = os.environ.get("CALC_TEST_AMQP_URL", "")
_broker_pidfile: Path | None = None


def setUpModule() -> None:  # noqa: N802 (unittest's name)
    global BROKER, _broker_pidfile
    if MISSING:
        if REQUIRED:
            raise RuntimeError(f"TEST_REQUIRE_ALL=1 and {MISSING}")
        raise unittest.SkipTest(MISSING)
    if BROKER:
        return
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        why = "no CALC_TEST_AMQP_URL and Debian's rabbitmq-server is not installed"
        if REQUIRED:
            raise RuntimeError(f"TEST_REQUIRE_ALL=1 and {why}")
        raise unittest.SkipTest(why)
    _broker_pidfile = Path(tempfile.mkdtemp(prefix="test-rpc-")) / "rabbitmq.pid"
    started = subprocess.run([str(ROOT / "scripts/rabbitmq"), "start", str(_broker_pidfile)],
                             check=True, capture_output=True, text=True)
    BROKER = started.stdout.strip()


def tearDownModule() -> None:  # noqa: N802
    if _broker_pidfile is not None:
        subprocess.run([str(ROOT / "scripts/rabbitmq"), "stop", str(_broker_pidfile)], check=False)
        shutil.rmtree(_broker_pidfile.parent, ignore_errors=True)


def worker_binary() -> Path:
    """calc-worker-server: CALC_WORKER_SERVER, or built here (debug) in the cargo target dir."""
    named = os.environ.get("CALC_WORKER_SERVER")
    if named:
        return Path(named)
    subprocess.run(["cargo", "build", "--quiet", "-p", "calc-worker", "--bin", "calc-worker-server"],
                   cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "debug/calc-worker-server"


class Worker:
    """calc-worker-server on `queue` (memory ledger, --max-x 2), its stderr collected; started
    once it logs that it consumes (the queue is declared by then)."""

    def __init__(self, queue: str) -> None:
        self.lines: list[str] = []
        self.consuming = threading.Event()
        self.process = subprocess.Popen(
            [str(worker_binary()), "--source", BROKER, "--queue", queue, "--max-x", "2",
             "--concurrency", "100", "--health-addr", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_LOG": "info"})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.consuming.wait(60):
            self.stop()
            raise AssertionError("the worker did not start consuming within 60 s:\n" + "".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "consuming RabbitMQ" in line:
                self.consuming.set()

    def stop(self) -> int:
        """SIGTERM; the exit status (0 after a clean drain)."""
        self.process.terminate()
        try:
            status = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait(10)
        self.reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return status


def unique_queue() -> str:
    return f"rpc_queue-test-{os.getpid()}-{time.time_ns() % 10**9}"


def delete_queue(queue: str) -> None:
    """Removes the work queue, its dead-letter queue and exchange (the broker may be shared)."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER))
    channel = connection.channel()
    for name in (queue, f"{queue}.dlq"):
        channel.queue_delete(queue=name)
    channel.exchange_delete(exchange=f"{queue}.dlx")
    connection.close()


class TheSeedShapedClient(unittest.TestCase):
    def setUp(self) -> None:
        self.queue = unique_queue()
        self.worker = Worker(self.queue)
        self.addCleanup(delete_queue, self.queue)

    def tearDown(self) -> None:
        status = self.worker.stop()
        self.assertEqual(status, 0, "the worker drains and exits 0 on SIGTERM:\n" + "".join(self.worker.lines[-20:]))

    def test_fifty_calls_with_small_x_are_each_answered_with_their_x(self) -> None:
        xs = [0.002 * i for i in range(50)]  # 0 to 0.098 s, as text: "0.0", "0.002", ...
        calls = rpc_client.run(BROKER, self.queue, xs, timeout=60)
        self.assertEqual(len(calls.sent), 50, "one correlation id per call")
        self.assertEqual(sorted(calls.sent.values()), xs)
        self.assertEqual(calls.wrong(), [], "every call answered with its x")
        for correlation_id, x in calls.sent.items():
            answer = calls.answers[correlation_id]
            self.assertFalse(answer.error)
            self.assertAlmostEqual(float(answer.body), x, delta=1e-6)
        self.assertGreaterEqual(calls.elapsed, max(xs))

    def test_the_command_line_runs_like_the_seeds_driver(self) -> None:
        run = subprocess.run([sys.executable, str(ROOT / "scripts/rpc_client.py"), "--url", BROKER,
                              "--queue", self.queue, "--timeout", "60", "50", "0.1"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stdout, r"^\d+\.\d\d seconds\n$")
        self.assertIn("50 of 50 answered with their x", run.stderr)

    def test_a_bad_body_gets_an_error_reply_not_silence(self) -> None:
        client = rpc_client.RpcClient(BROKER, self.queue)
        try:
            for body, why in (("abc", "neither a number nor a JSON object"), ("3", "out of range")):
                answer = client.call(body, timeout=30)
                self.assertIsNotNone(answer, f"{body!r} was not answered")
                assert answer is not None
                self.assertTrue(answer.error, f"{body!r}: {answer}")
                self.assertTrue(answer.body.startswith("error: ") and why in answer.body, answer.body)
            good = client.call("0.01", timeout=30)
            self.assertEqual((good.body, good.error) if good else None, ("0.01", False))
        finally:
            client.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
