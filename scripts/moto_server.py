"""moto server, with S3 conditional writes made atomic as they are on AWS.

moto 5.2 checks `If-Match` / `If-None-Match` and then stores the object in two steps, on a
threaded server, with no lock between them: two PUTs conditional on the same ETag can both
succeed, which real S3 never allows (one gets 412). That race lost an increment in
`concurrent_hits_are_never_lost_on_s3_and_conflicts_are_retried`. Serialising moto's PutObject
handler restores S3's compare-and-swap semantics; everything else stays as moto ships it.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (same arguments as moto_server)
"""

import threading

from moto.s3.responses import S3Response
from moto.server import main

_put_lock = threading.Lock()
_put_object = S3Response.put_object


def _atomic_put_object(self, *args, **kwargs):
    with _put_lock:
        return _put_object(self, *args, **kwargs)


S3Response.put_object = _atomic_put_object

if __name__ == "__main__":
    main()
