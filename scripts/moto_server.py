"""moto server with each request atomic, as every single AWS API call is.

moto 5.2 serves requests on threads and implements read-modify-write operations without locks:
`UpdateItem` with `ADD` reads the item, adds and writes it back; S3 `PutObject` checks
`If-Match` / `If-None-Match` and then stores. Two concurrent calls can interleave between the
read and the write, which DynamoDB and S3 never allow. Both races lost increments in this
project's 200-way concurrency tests (an `ADD` overwritten; two PUTs conditional on one ETag both
accepted). Serialising request handling restores per-call atomicity; moto is bound by the GIL, so
it costs little throughput.

Three speed-ups, same behaviour; everything else stays as moto ships it:
- an SQS long poll (ReceiveMessage with WaitTimeSeconds) waits outside the lock, between atomic
  non-waiting receives, instead of stopping every other call for up to 20 s;
- moto's SQS read the clock through datetime arithmetic for every message on every call (a
  queue's attributes count visible and delayed messages, each asking for "now"): SendMessage cost
  ~30 ms with 1,000 messages queued. `unix_time` / `unix_time_millis` without an argument are
  `time.time()` under another name, and are replaced by it (server mode does not freeze time);
- SendMessage also read the queue's attributes, all of them, counting every message twice, to
  learn whether content-based deduplication is on: while sending, a queue's attributes are only
  its FIFO settings (the only ones sending reads; a standard queue has none);
- TransactWriteItems kept a deep copy of a whole table per action, to roll back with (a
  99-action transaction on a table of 3,000 items copied 300,000 items); it keeps a copy of the
  items the transaction touches instead, and puts them back if it is cancelled.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (same arguments as moto_server)
"""

import copy
import json
import threading
import time

import moto.core.utils
import moto.dynamodb.models
import moto.sqs.models
from moto.dynamodb.models.table import Table

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
# without the lock (on the queue's own condition, which a send notifies), as SQS itself never
# blocks other callers.
_receive = moto.sqs.models.SQSBackend.receive_message


def _receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                     message_attribute_names=None):
    deadline = time.time() + (wait_seconds_timeout or 0)
    while True:
        with _one_request_at_a_time:
            result = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = deadline - time.time()
        if result or left <= 0:
            return result
        # Until a message is sent to the queue (moto notifies), or a while, since a message
        # whose visibility timeout runs out comes back without a notification.
        self.get_queue(queue_name).wait_for_messages(min(left, 0.25))


moto.sqs.models.SQSBackend.receive_message = _receive_message



class _NoTableCopy:
    """moto.dynamodb's `copy` during TransactWriteItems: tables are not copied (the items the
    transaction touches are, by _transact_write_items); everything else is copied as before."""

    @staticmethod
    def deepcopy(obj, memo=None):
        return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_transact = moto.dynamodb.models.DynamoDBBackend.transact_write_items


def _touched_items(backend, transact_items):
    """(table, key, attributes before or None) for each item the transaction touches."""
    touched = {}
    for action in transact_items:
        _, op = next(iter(action.items()))
        name = op.get("TableName")
        if name not in backend.tables:
            continue
        table = backend.tables[name]
        if "Item" in op:
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        ident = (name, json.dumps(key, sort_keys=True))
        if ident not in touched:
            current = backend.get_item(name, key)
            before = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
            touched[ident] = (name, key, before)
    return list(touched.values())


def _transact_write_items(self, transact_items):
    try:
        before = _touched_items(self, transact_items)
    except Exception:  # noqa: BLE001 (malformed: moto's own code reports it as it always did)
        return _transact(self, transact_items)
    moto.dynamodb.models.copy = _NoTableCopy()
    try:
        return _transact(self, transact_items)
    except Exception:
        for name, key, attributes in before:
            if attributes is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, attributes)
        raise
    finally:
        moto.dynamodb.models.copy = copy


moto.dynamodb.models.DynamoDBBackend.transact_write_items = _transact_write_items


_Queue = moto.sqs.models.Queue
_all_attributes = _Queue.attributes
_sends_in_progress = 0


def _sending_attributes(queue):
    """What sending reads of a queue's attributes: its FIFO settings, not the message counts."""
    if not queue.fifo_queue:
        return {}
    values = {a: getattr(queue, moto.core.utils.camelcase_to_underscores(a)) for a in queue.FIFO_ATTRIBUTES}
    # As the full attributes have them: booleans as "true" / "false".
    return {a: str(v).lower() if isinstance(v, bool) else v for a, v in values.items()}


def _sending(send):
    def sending(self, *args, **kwargs):
        # Requests run one at a time (the lock above), so swapping a class attribute is safe; the
        # count handles SendMessageBatch, which calls SendMessage per entry.
        global _sends_in_progress
        _sends_in_progress += 1
        _Queue.attributes = property(_sending_attributes)
        try:
            return send(self, *args, **kwargs)
        finally:
            _sends_in_progress -= 1
            if _sends_in_progress == 0:
                _Queue.attributes = _all_attributes

    return sending


moto.sqs.models.SQSBackend.send_message = _sending(moto.sqs.models.SQSBackend.send_message)
moto.sqs.models.SQSBackend.send_message_batch = _sending(moto.sqs.models.SQSBackend.send_message_batch)


if __name__ == "__main__":
    main()
