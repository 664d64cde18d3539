"""The Python baseline for scripts/bench-http: the original's EC2 variant (seed 000,
`1-fastapi-ec2/src/main.py`), minus the static page, which the benchmark never requests.

An in-memory counter that `GET /hits` increments and returns. The original returned the int
(FastAPI's JSON path, body `1`); this returns the same bytes as `text/plain`, as this project's
contract says, which skips FastAPI's response serialisation and so is, if anything, faster.

No lock: the handler is `async def` with no `await` between read and write, so on one event loop
the increment cannot interleave. With `uvicorn --workers 2` each worker PROCESS has its own
counter (the original ran one process), so the numbers it returns are per worker; that makes
its job easier, never harder, than hits-server's single shared atomic.

Run: uvicorn --app-dir bench/fastapi app:app --workers 2 [--loop uvloop --http httptools]
"""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
hits = 0


@app.get("/hits", response_class=PlainTextResponse)
async def get_hits() -> PlainTextResponse:
    global hits
    hits += 1
    return PlainTextResponse(str(hits))


@app.get("/healthz")
async def health_check() -> dict[str, str]:
    return {"status": "pass"}
