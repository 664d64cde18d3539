#!/usr/bin/env python3
"""The local stand-in for the REST API's POST /calc -> SQS integration (template.yaml, CalcPostMethod).

On AWS, API Gateway validates the body against CalcModel and calls SQS SendMessage itself. Here,
a threaded HTTP server does the same, reading the method's stage and path, the model's JSON
schema, the status codes and the gateway responses from template.yaml (scripts/stack.py), so the
two cannot drift:

    415 unless Content-Type is application/json (absent counts as JSON, as in API Gateway);
    400 {"message": ...} on a body that is not JSON or fails the schema (BAD_REQUEST_BODY);
    200 {"messageId": ...} once SQS took the body, as it came (the integration response whose
    SelectionPattern matches 2xx: 200, as API Gateway's SQS integration and the seed's driver
    expect); 502 JSON if SQS did not.

One difference, in how, not what: API Gateway calls SendMessage once per request, in parallel.
moto handles one call at a time, a few milliseconds each, so 1,000 concurrent POSTs would queue
for seconds behind it and the local queue benchmark would time the emulator. Requests that arrive
while calls are in flight are therefore sent together, up to 10 in one SendMessageBatch; each
request still gets its own message, its own messageId, and its own 200 or 502.

    scripts/calc_api.py --endpoint http://127.0.0.1:MOTO --queue-url URL --port P [--max-x X]

prints `listening on http://127.0.0.1:P/v1/calc` when ready (--port 0 picks a free port).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin/python").exists():
    os.execv(str(VENV / "bin/python"), [str(VENV / "bin/python"), str(Path(__file__).resolve()), *sys.argv[1:]])

sys.path.insert(0, str(ROOT / "scripts"))
import boto3  # noqa: E402  (after the re-exec into the venv)
import jsonschema  # noqa: E402
from botocore.config import Config  # noqa: E402

import stack  # noqa: E402


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json would accept NaN and Infinity


class _Sender:
    """SendMessage for many threads: what arrives while calls are in flight goes in the next
    SendMessageBatch (at most 10 entries, 4 calls at once). `send(body)` returns the message id
    or raises."""

    def __init__(self, sqs, queue_url: str):
        self._sqs, self._queue_url = sqs, queue_url
        self._pending: queue.Queue[tuple[str, Future]] = queue.Queue()
        # A few calls in flight at once, as API Gateway's many would be: each waits its turn at
        # moto, and one at a time would leave the requests behind it waiting too.
        for n in range(4):
            threading.Thread(target=self._run, name=f"sqs-sender-{n}", daemon=True).start()

    def send(self, body: str) -> str:
        done: Future = Future()
        self._pending.put((body, done))
        return done.result()

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < 10:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                out = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=[
                    {"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(batch)])
            except Exception as e:  # noqa: BLE001 (the call failed: every request in it gets a 502)
                for _, done in batch:
                    done.set_exception(e)
                continue
            ids = {entry["Id"]: entry["MessageId"] for entry in out.get("Successful", [])}
            errors = {entry["Id"]: entry.get("Message", entry.get("Code")) for entry in out.get("Failed", [])}
            for i, (_, done) in enumerate(batch):
                if str(i) in ids:
                    done.set_result(ids[str(i)])
                else:
                    done.set_exception(RuntimeError(errors.get(str(i), "not in the batch response")))


def make_server(endpoint: str, queue_url: str, port: int = 0, max_x: str | None = None,
                host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """The server (not yet serving) and the URL of its one route."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or stack.DEFAULT_REGION
    template = stack.Stack(stack.load_template(), "local", {"MaxX": max_x} if max_x else {}, region)
    method, path, models = template.rest_method(stack.CALC_METHOD)
    if method != "POST":
        raise stack.StackError(f"{stack.CALC_METHOD} is {method}, this stand-in serves POST")
    validator = jsonschema.Draft4Validator(models["application/json"])  # API Gateway validates with draft 4
    gateway = template.gateway_responses(stack.CALC_METHOD)
    responses = template.template["Resources"][stack.CALC_METHOD]["Properties"]["Integration"]["IntegrationResponses"]
    accepted = next(int(r["StatusCode"]) for r in responses if r.get("SelectionPattern", "").startswith("2"))
    failed = next(r for r in responses if "SelectionPattern" not in r)  # the default: everything else
    # Clients are thread-safe (sessions are not): one client, made here, shared by every request
    # thread, with a connection pool as large as the concurrency it serves.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = boto3.session.Session(region_name=region).client(
        "sqs", endpoint_url=endpoint, config=Config(max_pool_connections=128, retries={"max_attempts": 2}))
    sender = _Sender(sqs, queue_url)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length

        def answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def gateway_response(self, kind: str, error: str = "") -> None:
            status, templates = gateway[kind]
            escaped = json.dumps(error)[1:-1]  # API Gateway escapes it for the JSON template
            self.answer(status, templates["application/json"].replace("$context.error.validationErrorString", escaped))

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True  # the body is not read: the connection cannot go on
                return self.answer(411, '{"message": "send a Content-Length"}')
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?", 1)[0] != path:
                return self.answer(404, '{"message": "Not Found"}')
            content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
            if content_type != "application/json":
                return self.gateway_response("UNSUPPORTED_MEDIA_TYPE")
            try:
                body = raw.decode("utf-8")
                document = json.loads(body, parse_constant=_reject_constant)
            except ValueError as e:
                return self.gateway_response("BAD_REQUEST_BODY", f"[Invalid JSON: {e}]")
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
            if errors:
                return self.gateway_response("BAD_REQUEST_BODY", "[" + ", ".join(e.message for e in errors) + "]")
            try:
                message_id = sender.send(body)
            except Exception as e:  # noqa: BLE001 (any failure of the call is the gateway's 502)
                print(f"calc_api.py: SendMessage failed: {e}", file=sys.stderr)
                return self.answer(int(failed["StatusCode"]), failed["ResponseTemplates"]["application/json"])
            self.answer(accepted, json.dumps({"messageId": message_id}))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one line per request would be most of the cost at load

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the listen backlog: bursts of ~100 connections at once

    server = Server((host, port), Handler)
    return server, f"http://{host}:{server.server_address[1]}{path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the emulator, e.g. http://127.0.0.1:5000")
    parser.add_argument("--queue-url", required=True, help="CalcQueue's URL (scripts/stack.py --outputs)")
    parser.add_argument("--port", type=int, default=0, help="where to listen (default: a free port)")
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--max-x", help="the template's MaxX parameter (default: the template's default)")
    args = parser.parse_args(argv)
    try:
        server, url = make_server(args.endpoint, args.queue_url, args.port, args.max_x, args.host)
    except (stack.StackError, OSError) as e:
        print(f"calc_api.py: {e}", file=sys.stderr)
        return 2
    print(f"listening on {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
