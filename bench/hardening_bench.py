#!/usr/bin/env python3
"""The servers on a bad day (issue 19): log bytes written per 503 while shedding load, and memory
while a spill file larger than the buffer is replayed. Loopback only, bounded in time and traffic.

Started by scripts/bench-hardening, which builds the release binaries. Standard library only (the
wrk helpers come from http_bench.py). Three runs, each printing its figures:

1. ingest-server with its sink stalled (stdout into a pipe nobody reads) and a 1 MiB buffer,
   under wrk POST /events for SECONDS: 503s answered, bytes and lines of log, bytes per 503.
2. hits-server with DynamoDB unreachable (loopback port 9, one attempt), under wrk GET /hits for
   SECONDS: the same.
3. ingest-server started on a 64 MiB spill file with --buffer-bytes 8 MiB, its sink stdout read at
   16 MiB/s: the peak RSS until the replay is done, ingest_buffer_peak_bytes, the time from
   `listening on` to the first 202 of a new request (one POST every 50 ms), and whether every
   line reached the sink.

--ingest-server / --hits-server measure other builds (e.g. an older commit's, for "before").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from http_bench import ROOT, BenchError, run_wrk

WRK_INGEST = ROOT / "bench" / "wrk-ingest.lua"
MIB = 1024 * 1024


def start(argv: list[str], env: dict[str, str], log: Path, stdout=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """Starts a server with stderr into `log`; returns it and its URL once it says where it listens."""
    with open(log, "wb") as log_file:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=stdout, stderr=log_file,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            raise BenchError(f"{argv[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.02)
    process.kill()
    raise BenchError(f"{argv[0]} did not say where it listens within 30 s")


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_figures(log: Path) -> tuple[int, int]:
    data = log.read_bytes()
    return len(data), data.count(b"\n")


def flood(args: argparse.Namespace, name: str, url: str, process: subprocess.Popen, log: Path,
          script: Path | None) -> dict:
    """wrk for SECONDS, then a second and a half for the last summary line; the log's figures."""
    report = run_wrk(args, url, args.seconds, script)
    time.sleep(1.5)  # the log summary writes the last window's line when it closes (1 s)
    size, lines = log_figures(log)
    kill(process)
    refused = report["non_2xx_3xx"]
    figures = {
        "server": name, "seconds": args.seconds, "requests": report["requests"], "refused": refused,
        "log_bytes": size, "log_lines": lines,
        "log_bytes_per_refusal": round(size / refused, 2) if refused else None,
    }
    print(f"{name}: {report['requests']:,} requests in {args.seconds} s, {refused:,} refused (503); "
          f"log {size:,} bytes in {lines:,} lines = {figures['log_bytes_per_refusal']} bytes per 503",
          flush=True)
    return figures


def ingest_flood(args: argparse.Namespace, work: Path) -> dict:
    log = work / "ingest-flood.log"
    # The sink writes to a pipe nobody reads: once it is full the sink's calls never return, the
    # 1 MiB buffer fills, and every further request is refused.
    process, url = start([args.ingest_server, "--addr", "127.0.0.1:0", "--sink", "stdout",
                          "--buffer-bytes", str(MIB), "--spill", "off", "--shutdown-timeout", "1"],
                         {"RUST_LOG": "info"}, log, stdout=subprocess.PIPE)
    return flood(args, "ingest-server, sink stalled", f"{url}/events", process, log, WRK_INGEST)


def hits_flood(args: argparse.Namespace, work: Path) -> dict:
    log = work / "hits-flood.log"
    env = {"RUST_LOG": "info", "HITS_STORE": "dynamodb:hits", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_MAX_ATTEMPTS": "1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "eu-west-2"}
    process, url = start([args.hits_server, "--addr", "127.0.0.1:0", "--shutdown-timeout", "1"], env, log)
    return flood(args, "hits-server, DynamoDB unreachable", f"{url}/hits", process, log, None)


class SlowReader(threading.Thread):
    """Reads the sink's stdout at `rate` bytes/s, counting lines."""

    def __init__(self, pipe, rate: int):
        super().__init__(daemon=True)
        self.pipe, self.rate, self.lines, self.bytes = pipe, rate, 0, 0

    def run(self) -> None:
        started = time.monotonic()
        while chunk := self.pipe.read1(64 * 1024):
            self.bytes += len(chunk)
            self.lines += chunk.count(b"\n")
            ahead = self.bytes / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def post_event(url: str, n: int) -> int:
    body = json.dumps({"type": "bench", "timestamp": 1700000000000, "id": -n}).encode()
    request = urllib.request.Request(f"{url}/events", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def metric(url: str, name: str) -> float | None:
    with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def replay(args: argparse.Namespace, work: Path) -> dict:
    spill = work / "spill.ndjson"
    pad = "x" * 200
    written, lines = 0, 0
    with open(spill, "w", encoding="ascii") as f:
        while written < args.spill_mib * MIB:
            line = f'{{"type":"page_view","timestamp":1700000000000,"id":{lines},"pad":"{pad}"}}\n'
            f.write(line)
            written += len(line)
            lines += 1
    log = work / "replay.log"
    started = time.monotonic()
    process, url = start([args.ingest_server, "--addr", "127.0.0.1:0", "--sink", "stdout",
                          "--buffer-bytes", str(args.buffer_mib * MIB), "--spill", str(spill),
                          "--shutdown-timeout", "5"], {"RUST_LOG": "info"}, log, stdout=subprocess.PIPE)
    listening = time.monotonic()
    reader = SlowReader(process.stdout, args.drain_mib_per_s * MIB)
    reader.start()
    peak_kb, first_202, refused, posted, accepted = 0, None, 0, 0, 0
    claimed = Path(str(spill) + ".replaying")
    deadline = listening + args.replay_timeout
    next_post = listening
    while time.monotonic() < deadline:
        peak_kb = max(peak_kb, rss_kb(process.pid))
        now = time.monotonic()
        if now >= next_post and (first_202 is None or claimed.exists()):
            posted += 1
            status = post_event(url, posted)
            if status == 202:
                accepted += 1
                first_202 = first_202 if first_202 is not None else time.monotonic() - listening
            else:
                refused += 1
            next_post = now + 0.05
        if first_202 is not None and not claimed.exists() and not spill.exists():
            break
        time.sleep(0.01)
    replay_s = time.monotonic() - listening
    done = not claimed.exists()
    peak_buffer = metric(url, "ingest_buffer_peak_bytes")
    expected = lines + accepted
    settle = time.monotonic() + 10
    while reader.lines < expected and time.monotonic() < settle:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        kill(process)
    figures = {
        "spill_bytes": written, "spill_lines": lines, "buffer_bytes": args.buffer_mib * MIB,
        "start_to_listening_s": round(listening - started, 2), "replay_done": done,
        "replay_s": round(replay_s, 2), "rss_peak_mb": round(peak_kb / 1024, 1),
        "buffer_peak_bytes": peak_buffer, "first_202_after_s": None if first_202 is None else round(first_202, 2),
        "posts_refused_before_first_202": refused, "sink_lines": reader.lines, "sink_lines_expected": expected,
    }
    peak = "n/a (no such metric)" if peak_buffer is None else f"{peak_buffer / MIB:.1f} MiB"
    first = "never" if first_202 is None else f"{first_202:.2f} s"
    print(f"replay of a {written / MIB:.0f} MiB spill ({lines:,} events) into a {args.buffer_mib} MiB buffer, "
          f"sink read at {args.drain_mib_per_s} MiB/s: RSS peak {peak_kb / 1024:.1f} MB, buffer peak {peak}; "
          f"first 202 of a new request {first} after `listening on` ({refused} refused before it); "
          f"replay {'done' if done else 'NOT done'} in {replay_s:.1f} s; "
          f"sink lines {reader.lines:,} of {expected:,}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ingest-server", required=True)
    parser.add_argument("--hits-server", required=True)
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each flood (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--spill-mib", type=int, default=64)
    parser.add_argument("--buffer-mib", type=int, default=8)
    parser.add_argument("--drain-mib-per-s", type=int, default=16)
    parser.add_argument("--replay-timeout", type=float, default=60)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hardening-") as tmp:
        work = Path(tmp)
        try:
            figures = {
                "ingest_flood": ingest_flood(args, work),
                "hits_flood": hits_flood(args, work),
                "replay": replay(args, work),
            }
        except BenchError as e:
            print(f"bench-hardening: {e}", file=sys.stderr)
            return 1
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
