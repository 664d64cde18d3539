#!/usr/bin/env python3
"""A client shaped like seed 000's RabbitMQ driver (`rabbitmq.py N max`), written with pika.

    scripts/rpc_client.py [--url AMQP_URL] [--queue rpc_queue] [--timeout S] CALCULATIONS MAX

It declares an exclusive callback queue, publishes every x ~ U(0, MAX) as plain text (`str(x)`)
to the queue (default `rpc_queue`, as the seed) with `reply_to` = the callback queue and a
`correlation_id` of its own (uuid4), all at once, then waits for every answer and checks that
each is its x (within 1e-6, as the seed asserts). It prints the elapsed seconds as the seed does,
and exits 1 when a call is answered with an error (message type `error`, body `error: <reason>`),
with another number, or not at all before the timeout. Publishes are confirmed and mandatory, so
a queue that nobody declared is an error instead of a silent loss.

The worker (`calc-worker-server --queue rpc_queue`) answers; the protocol is in docs/queue.md.
The URL defaults to CALC_AMQP_URL, then amqp://guest:guest@localhost:5672/%2f.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2f"
ERROR_TYPE = "error"


@dataclass
class Answer:
    """One reply: its body as text, and whether the worker marked it as an error."""

    body: str
    error: bool


@dataclass
class Calls:
    """What a run sent and what came back, by correlation id."""

    sent: dict[str, float] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    elapsed: float = 0.0

    def wrong(self) -> list[str]:
        """Every call not answered with its x, said in one line each."""
        problems = []
        for correlation_id, x in self.sent.items():
            answer = self.answers.get(correlation_id)
            if answer is None:
                problems.append(f"calc({x}): no answer")
            elif answer.error:
                problems.append(f"calc({x}): {answer.body}")
            else:
                try:
                    ok = math.fabs(float(answer.body) - x) < 1e-6
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(f"calc({x}): answered {answer.body!r}")
        return problems


class RpcClient:
    """pika's blocking connection with one exclusive callback queue, as the seed's RpcClient."""

    def __init__(self, url: str, queue: str) -> None:
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        declared = self.channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        self.callback_queue = declared.method.queue
        self.answers: dict[str, Answer] = {}
        self.channel.basic_consume(queue=self.callback_queue, on_message_callback=self._on_response,
                                   auto_ack=True)

    def _on_response(self, _channel, _method, properties, body: bytes) -> None:
        answer = Answer(body.decode("utf-8", "replace"), properties.type == ERROR_TYPE)
        # A second answer to one correlation id (a redelivered request) is ignored.
        self.answers.setdefault(properties.correlation_id, answer)

    def send(self, body: str, correlation_id: str | None = None) -> str:
        """Publishes one request (confirmed, mandatory); returns its correlation id."""
        correlation_id = correlation_id or str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=correlation_id),
            body=body.encode(),
            mandatory=True,
        )
        return correlation_id

    def wait(self, correlation_ids: list[str], timeout: float) -> None:
        """Processes replies until every id is answered or `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while any(c not in self.answers for c in correlation_ids):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.connection.process_data_events(time_limit=min(left, 0.5))

    def call(self, body: str, timeout: float = 30.0) -> Answer | None:
        """One request and its answer (None if none came within `timeout`)."""
        correlation_id = self.send(body)
        self.wait([correlation_id], timeout)
        return self.answers.get(correlation_id)

    def close(self) -> None:
        self.connection.close()


def run(url: str, queue: str, xs: list[float], timeout: float) -> Calls:
    """Sends every x as text, all at once, and waits for the answers."""
    client = RpcClient(url, queue)
    try:
        calls = Calls()
        start = time.monotonic()
        for x in xs:
            calls.sent[client.send(str(x))] = x
        client.wait(list(calls.sent), timeout)
        calls.elapsed = time.monotonic() - start
        calls.answers = dict(client.answers)
        return calls
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Test latency of a RabbitMQ queue, request-reply (seed 000)")
    parser.add_argument("calculations", type=int, help="Number of calculations")
    parser.add_argument("max", type=float, help="Max value of x")
    parser.add_argument("--url", default=os.environ.get("CALC_AMQP_URL", DEFAULT_URL), help="AMQP URL")
    parser.add_argument("--queue", default="rpc_queue", help="the worker's queue [rpc_queue]")
    parser.add_argument("--timeout", type=float, help="seconds to wait for every answer "
                        "[60 + 2 max + calculations x max / 100]")
    args = parser.parse_args(argv)
    if args.calculations < 1 or not args.max > 0:
        parser.error("calculations must be ≥ 1 and max > 0")
    timeout = args.timeout or 60 + 2 * args.max + args.calculations * args.max / 100
    xs = [random.uniform(0, args.max) for _ in range(args.calculations)]
    calls = run(args.url, args.queue, xs, timeout)
    problems = calls.wrong()
    answered = len(calls.sent) - len(problems)
    print(f"{calls.elapsed:.2f} seconds")
    print(f"{answered} of {len(calls.sent)} answered with their x", file=sys.stderr)
    for problem in problems[:5]:
        print(f"rpc_client.py: {problem}", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
