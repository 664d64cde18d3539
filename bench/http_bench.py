#!/usr/bin/env python3
"""hits-server against nginx (the limit) and the original's Python server (FastAPI + uvicorn),
under the same wrk load.

Started by scripts/bench-http, which builds hits-server (release), installs the pinned FastAPI
stack (.venv), wrk and nginx. Standard library only. For each server: start it with 2 workers,
wait until /healthz answers, run a wrk warmup, then the measured wrk run, sampling the RSS and CPU
time of the server's whole process tree (uvicorn's or nginx's master and workers) every 100 ms.

nginx answers `GET /hits` with a fixed `return 200` (no counter at all): what serving a tiny
response over HTTP/1.1 keep-alive costs on this machine. hits-server and nginx are measured in
alternating rounds (`--rounds`, default 3), so drift of the machine hits both alike; the ratio
is the median of the rounds' ratios. Prints the servers side by side, the ratios, whether the
targets are met (>= 0.85x nginx; >= 10x FastAPI's throughput and <= 1/10 its p99, on the memory
store), and checks hits-server's count against what wrk saw in every round.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
THROUGHPUT_TARGET = 10.0
P99_TARGET = 10.0
NGINX_TARGET = 0.85
NGINX_CONF = """worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # hyper keeps a connection for any number of requests; nginx closes it after 1000 by default.
    keepalive_requests 1000000;
    client_body_temp_path {dir}/nginx-body;
    proxy_temp_path {dir}/nginx-proxy;
    fastcgi_temp_path {dir}/nginx-fastcgi;
    uwsgi_temp_path {dir}/nginx-uwsgi;
    scgi_temp_path {dir}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /hits {{ default_type text/plain; add_header Cache-Control no-store; return 200 "1"; }}
        location = /healthz {{ default_type application/json; return 200 '{{"status":"pass"}}'; }}
    }}
}}
"""


class BenchError(Exception):
    """Something a benchmark run cannot continue past; the message says what."""


@dataclass
class Server:
    key: str
    label: str
    workers: str
    argv: list[str]
    env: dict[str, str]
    checks_count: bool  # one shared counter whose value can be checked against wrk


@dataclass
class Result:
    server: Server
    warmup: dict
    run: dict
    rss_idle_kb: int
    rss_load_kb: list[int] = field(default_factory=list)
    rss_peak_kb: int = 0
    cpu_seconds: float = 0.0
    count_after: int | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Every live process of the session the server leads (it was started in a new session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 3 and rest[3] == str(sid):
            pids.append(int(entry))
    return pids


def tree_usage(sid: int) -> tuple[int, float]:
    """(sum of VmRSS in KiB, user + system CPU seconds) over the session's processes."""
    rss_kb, ticks = 0, 0
    for pid in session_pids(sid):
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                rss_kb += int(f.read().split()[1]) * PAGE_SIZE_KB
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except (OSError, ValueError, IndexError):
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        ticks += int(rest[11]) + int(rest[12])  # utime, stime
    return rss_kb, ticks / CLOCK_TICKS


class Sampler(threading.Thread):
    """Samples the tree's RSS every 100 ms while `loading` is set; keeps the peak always."""

    def __init__(self, sid: int):
        super().__init__(daemon=True)
        self.sid = sid
        self.loading = threading.Event()
        self.stopping = threading.Event()
        self.load_samples: list[int] = []
        self.peak = 0

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            rss, _ = tree_usage(self.sid)
            self.peak = max(self.peak, rss)
            if self.loading.is_set():
                self.load_samples.append(rss)


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def wait_ready(process: subprocess.Popen, base: str, name: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode} before answering; log: {log.read_text()[-2000:]}")
        try:
            # Several answers in a row: every uvicorn worker is likely up, not just the first.
            if all(get(f"{base}/healthz", 1.0)[0] == 200 for _ in range(8)):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{name} did not answer {base}/healthz within 30 s; log: {log.read_text()[-2000:]}")


def run_wrk(args: argparse.Namespace, url: str, seconds: int, script: Path | None = None) -> dict:
    """One wrk run; `script` (default bench/wrk-report.lua) must define wrk-report.lua's `done`."""
    argv = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
        "-s", str(script or ROOT / "bench" / "wrk-report.lua"), url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            report = json.loads(line.removeprefix("BENCH-JSON "))
            report["ok"] = report["requests"] - report["non_2xx_3xx"]
            report["socket_errors"] = sum(
                report[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            )
            report["rps"] = report["requests"] / (report["duration_us"] / 1e6)
            return report
    raise BenchError(f"wrk printed no report line:\n{out.stdout}")


def measure(server: Server, args: argparse.Namespace, workdir: Path) -> Result:
    log = workdir / f"{server.key}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            server.argv, env=server.env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
        )
    sampler = Sampler(process.pid)
    try:
        base = server.env["BENCH_BASE_URL"]
        wait_ready(process, base, server.label, log)
        time.sleep(0.5)
        rss_idle, _ = tree_usage(process.pid)
        sampler.start()
        print(f"  {server.label}: warmup {args.warmup} s ...", file=sys.stderr, flush=True)
        warmup = run_wrk(args, f"{base}/hits", args.warmup)
        _, cpu_before = tree_usage(process.pid)
        sampler.loading.set()
        print(f"  {server.label}: measuring {args.duration} s ...", file=sys.stderr, flush=True)
        run = run_wrk(args, f"{base}/hits", args.duration)
        sampler.loading.clear()
        _, cpu_after = tree_usage(process.pid)
        result = Result(server, warmup, run, rss_idle)
        result.rss_load_kb = list(sampler.load_samples)
        result.cpu_seconds = cpu_after - cpu_before
        if server.checks_count:
            status, body = get(f"{base}/hits", 5.0)
            if status != 200 or not body.strip().isdigit():
                raise BenchError(f"{server.label}: GET /hits after the run answered {status} {body!r}")
            result.count_after = int(body)
        sampler.stopping.set()
        sampler.join()
        result.rss_peak_kb = max(sampler.peak, rss_idle)
        return result
    finally:
        sampler.stopping.set()
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def servers(args: argparse.Namespace, workdir: Path) -> list[Server]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("HITS_")}
    hits_port, asyncio_port, uvloop_port, nginx_port = free_port(), free_port(), free_port(), free_port()
    store = "memory" if args.store == "memory" else f"file:{workdir / 'count'}"
    hits_env = base_env | {
        "HITS_STORE": store,
        "TOKIO_WORKER_THREADS": "2",
        "RUST_LOG": "warn",
        "BENCH_BASE_URL": f"http://127.0.0.1:{hits_port}",
    }
    python = str(ROOT / ".venv" / "bin" / "python")
    uvicorn = [python, "-m", "uvicorn", "--app-dir", str(ROOT / "bench" / "fastapi"), "app:app",
               "--host", "127.0.0.1", "--workers", "2", "--no-access-log", "--log-level", "warning"]
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=nginx_port))
    return [
        Server("hits", f"hits-server ({args.store})", "2 tokio threads",
               [args.hits_server, "--addr", f"127.0.0.1:{hits_port}"], hits_env, True),
        Server("nginx", "nginx, return 200", "2 processes",
               [args.nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")],
               base_env | {"BENCH_BASE_URL": f"http://127.0.0.1:{nginx_port}"}, False),
        Server("fastapi", "FastAPI as the original", "2 processes",
               [*uvicorn, "--port", str(asyncio_port), "--loop", "asyncio", "--http", "h11"],
               base_env | {"BENCH_BASE_URL": f"http://127.0.0.1:{asyncio_port}"}, False),
        Server("fastapi-fast", "FastAPI at its fastest", "2 processes",
               [*uvicorn, "--port", str(uvloop_port), "--loop", "uvloop", "--http", "httptools"],
               base_env | {"BENCH_BASE_URL": f"http://127.0.0.1:{uvloop_port}"}, False),
    ]


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def median_result(results: list[Result]) -> Result:
    """The round with the median requests/s (the lower middle one for an even count)."""
    ranked = sorted(results, key=lambda r: r.run["rps"])
    return ranked[(len(ranked) - 1) // 2]


def report(rounds: list[tuple[Result, Result]], pythons: list[Result], args: argparse.Namespace) -> bool:
    """Prints the table, ratios, targets and the count checks; False if a count is wrong."""
    hits = median_result([h for h, _ in rounds])
    nginx = median_result([n for _, n in rounds])
    results = [hits, nginx, *pythons]
    print()
    print(f"GET /hits over loopback: wrk {args.threads} threads, {args.connections} connections, "
          f"{args.duration} s after a {args.warmup} s warmup, keep-alive")
    print(f"machine: {os.cpu_count()} CPUs, shared by the server and wrk (no pinning), same for every server")
    print(f"hits-server and nginx: {len(rounds)} alternating rounds, the median round of each shown")
    print("FastAPI as the original = plain `uvicorn` (h11, asyncio); at its fastest = uvloop + httptools;")
    print("both without the access log (the original logged every request, which is slower still)")
    print()
    rows: list[tuple[str, list[str]]] = [
        ("workers", [r.server.workers for r in results]),
        ("requests/s", [f"{r.run['rps']:.0f}" for r in results]),
        ("latency p50 (ms)", [ms(r.run["p50_us"]) for r in results]),
        ("latency p90 (ms)", [ms(r.run["p90_us"]) for r in results]),
        ("latency p99 (ms)", [ms(r.run["p99_us"]) for r in results]),
        ("latency max (ms)", [ms(r.run["max_us"]) for r in results]),
        ("responses 2xx", [str(r.run["ok"]) for r in results]),
        ("non-2xx", [str(r.run["non_2xx_3xx"]) for r in results]),
        ("socket errors", [str(r.run["socket_errors"]) for r in results]),
        ("RSS idle (MB)", [mb(r.rss_idle_kb) for r in results]),
        ("RSS under load, median (MB)",
         [mb(statistics.median(r.rss_load_kb)) if r.rss_load_kb else "n/a" for r in results]),
        ("RSS peak (MB)", [mb(r.rss_peak_kb) for r in results]),
        ("server CPU time (s)", [f"{r.cpu_seconds:.2f}" for r in results]),
        ("requests per CPU-second",
         [f"{r.run['ok'] / r.cpu_seconds:.0f}" if r.cpu_seconds > 0 else "n/a" for r in results]),
    ]
    width = max(len(name) for name, _ in rows) + 2
    columns = [max(len(r.server.label), 14) + 2 for r in results]
    print(" " * width + "".join(r.server.label.rjust(c) for r, c in zip(results, columns)))
    for name, values in rows:
        print(name.ljust(width) + "".join(v.rjust(c) for v, c in zip(values, columns)))

    print()
    all_met = True
    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    ratios = [ratio(h.run["rps"], n.run["rps"]) for h, n in rounds]
    for i, ((h, n), r) in enumerate(zip(rounds, ratios), 1):
        print(f"round {i}: hits-server {h.run['rps']:.0f} req/s, nginx {n.run['rps']:.0f} req/s: x{r:.2f}")
    vs_nginx = statistics.median(ratios)
    met_n = vs_nginx >= NGINX_TARGET
    if args.store == "memory":
        all_met &= met_n
    print(f"hits-server vs nginx (median of the rounds): x{vs_nginx:.2f} of its requests/s "
          f"(target >= x{NGINX_TARGET}: {'met' if met_n else 'NOT met'}), p99 "
          f"{ms(hits.run['p99_us'])} vs {ms(nginx.run['p99_us'])} ms, requests per CPU-second "
          f"x{ratio(hits.run['ok'] / max(hits.cpu_seconds, 1e-9), nginx.run['ok'] / max(nginx.cpu_seconds, 1e-9)):.2f}")

    def per_cpu(r: Result) -> float:
        return ratio(r.run["ok"], r.cpu_seconds)

    for py in pythons:
        throughput = ratio(hits.run["rps"], py.run["rps"])
        p99 = ratio(py.run["p99_us"], hits.run["p99_us"])
        rss_h = statistics.median(hits.rss_load_kb) if hits.rss_load_kb else hits.rss_peak_kb
        rss_p = statistics.median(py.rss_load_kb) if py.rss_load_kb else py.rss_peak_kb
        met_t, met_p = throughput >= THROUGHPUT_TARGET, p99 >= P99_TARGET
        if py is pythons[0]:  # the target: the original's setup (plain uvicorn)
            all_met &= met_t and met_p
        print(f"hits-server vs {py.server.label}: throughput x{throughput:.1f} "
              f"(target >= x{THROUGHPUT_TARGET:.0f}: {'met' if met_t else 'NOT met'}), "
              f"p99 /{p99:.1f} (target <= 1/{P99_TARGET:.0f}: {'met' if met_p else 'NOT met'}), "
              f"RSS under load /{ratio(rss_p, rss_h):.1f}, "
              f"requests per CPU-second x{ratio(per_cpu(hits), per_cpu(py)):.1f}")
    print("(wrk needs about one of the two CPUs; a server that outruns it is held back by it, so the"
          " throughput ratio is a lower bound and requests per CPU-second shows the server's own cost)")
    scope = "memory store" if args.store == "memory" else "file store (the targets are for the memory store)"
    print(f"targets on the {scope} (x{NGINX_TARGET} nginx; against {pythons[0].server.label}): "
          f"{'met' if all_met else 'NOT met'}"
          " (the uvloop + httptools row is a stricter comparison than the original's setup)")

    print()
    ok = True
    for i, (h, _) in enumerate(rounds, 1):
        served = h.count_after - 1 if h.count_after is not None else None
        seen = h.warmup["ok"] + h.run["ok"]
        # wrk stops with at most one request in flight per connection, twice (warmup, run): the
        # server may have counted those although wrk never saw the answer.
        slack = 2 * args.connections
        if served is None:
            print(f"count check, round {i}: hits-server gave no count")
            ok = False
            continue
        good = 0 <= served - seen <= slack
        ok &= good
        print(f"count check (hits-server, round {i}): counter {served} before the check call; wrk saw "
              f"{seen} 2xx ({h.warmup['ok']} warmup + {h.run['ok']} measured); difference {served - seen} "
              f"= requests in flight when wrk stopped (allowed 0..{slack}): {'OK' if good else 'WRONG'}")
        if h.run["non_2xx_3xx"] or h.run["socket_errors"]:
            print(f"hits-server had errors during round {i}")
            ok = False
    print("count check (FastAPI): not possible, each uvicorn worker process counts on its own")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hits-server", required=True, help="the release hits-server binary")
    parser.add_argument("--nginx", default="/usr/sbin/nginx", help="nginx (default /usr/sbin/nginx)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating hits-server / nginx rounds (default 3)")
    parser.add_argument("--store", choices=["memory", "file"], default="memory")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warmup seconds (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if min(args.duration, args.warmup, args.connections, args.threads, args.rounds) < 1:
        parser.error("--duration, --warmup, --connections, --threads and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        hits, nginx, *others = servers(args, workdir)
        rounds, pythons = [], []
        try:
            for i in range(args.rounds):
                print(f"round {i + 1} of {args.rounds}:", file=sys.stderr, flush=True)
                rounds.append((measure(hits, args, workdir), measure(nginx, args, workdir)))
            for server in others:
                pythons.append(measure(server, args, workdir))
        except BenchError as e:
            print(f"bench-http: {e}", file=sys.stderr)
            return 1
        ok = report(rounds, pythons, args)
        results = [r for pair in rounds for r in pair] + pythons
    if args.json:
        args.json.write_text(json.dumps([
            {"server": r.server.label, "warmup": r.warmup, "run": r.run, "rss_idle_kb": r.rss_idle_kb,
             "rss_load_kb": r.rss_load_kb, "rss_peak_kb": r.rss_peak_kb, "cpu_seconds": r.cpu_seconds,
             "count_after": r.count_after} for r in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
