"""moto server with each request atomic, as every single AWS API call is.

moto 5.2 serves requests on threads and implements read-modify-write operations without locks:
`UpdateItem` with `ADD` reads the item, adds and writes it back; S3 `PutObject` checks
`If-Match` / `If-None-Match` and then stores. Two concurrent calls can interleave between the
read and the write, which DynamoDB and S3 never allow. Both races lost increments in this
project's 200-way concurrency tests (an `ADD` overwritten; two PUTs conditional on one ETag both
accepted). Serialising request handling restores per-call atomicity; moto is bound by the GIL, so
it costs little throughput.

Two SQS changes, same behaviour. A long poll waits outside the lock (below). And: moto's SQS reads the clock through datetime arithmetic for every
message on every call (a queue's attributes count visible and delayed messages, each asking for
"now"), which made SendMessage cost ~30 ms with 1,000 messages queued. Its `unix_time` and
`unix_time_millis` without an argument are `time.time()` under another name; they are replaced by
it (moto server mode does not freeze time). Everything else stays as moto ships it.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (same arguments as moto_server)
"""

import threading
import time

import moto.core.utils
import moto.sqs.models

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_one_request_at_a_time = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _atomic_dispatch(self, environ, start_response):
    # An SQS long poll waits without the lock (see _receive_message below).
    if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
        return _dispatch(self, environ, start_response)
    with _one_request_at_a_time:
        return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _atomic_dispatch

_unix_time = moto.core.utils.unix_time


def _fast_unix_time(dt=None):
    return time.time() if dt is None else _unix_time(dt)


def _fast_unix_time_millis(dt=None):
    return _fast_unix_time(dt) * 1000.0


moto.sqs.models.unix_time = _fast_unix_time
moto.sqs.models.unix_time_millis = _fast_unix_time_millis

# A long poll (ReceiveMessage with WaitTimeSeconds) sleeps inside moto until a message arrives:
# under the lock above it would stop every other call to the emulator for up to 20 s. Instead,
# each attempt is one atomic non-waiting receive, and the waiting happens between attempts,
# without the lock, as SQS itself never blocks other callers.
_receive = moto.sqs.models.SQSBackend.receive_message


def _receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                     message_attribute_names=None):
    deadline = time.time() + (wait_seconds_timeout or 0)
    while True:
        with _one_request_at_a_time:
            result = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        if result or time.time() >= deadline:
            return result
        time.sleep(0.02)


moto.sqs.models.SQSBackend.receive_message = _receive_message

if __name__ == "__main__":
    main()
