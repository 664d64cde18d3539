#!/usr/bin/env python3
"""`latency load` beside the tools people trust, on the same local targets, in one run.

Started by scripts/bench-load, which builds `latency` and hits-server (release) and installs the
pinned k6 (.venv) and Debian's wrk. Standard library only. Three comparisons:

1. **Closed loop, k6**: the same virtual users for the same time against a paced target (every
   answer after --pace-ms, bench/paced_target.py), so the rate is set by the target and not by
   either tool's own cost per request. Request rates within 10 %, medians and p99s within 20 %
   (or 0.2 ms).
2. **Open loop, k6**: the same arrival rate (k6's constant-arrival-rate executor, `latency load
   --rate`) against hits-server (memory store). Same criteria; ours is the send → last byte
   duration (k6's http_req_duration); its latency from the schedule is printed beside it.
3. **Throughput, wrk**: the same connections against hits-server (memory store), one wrk thread
   against `latency load --vus`, alternating for --rounds: `latency load` must reach >= 90 % of
   wrk's requests/s (median of the rounds' ratios) on at most one core (its CPU seconds over its
   wall-clock seconds, from the kernel's rusage of the process).

Prints each comparison side by side with the criteria, and `--json FILE` writes the figures.
Exit status 1 when a criterion is missed.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
K6_CLOSED = """import http from 'k6/http';
export default function () { http.get(__ENV.URL); }
"""
K6_OPEN = """import http from 'k6/http';
export const options = {
  scenarios: {
    open: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE), timeUnit: '1s', duration: __ENV.DURATION,
      preAllocatedVUs: Number(__ENV.MAX_VUS), maxVUs: Number(__ENV.MAX_VUS),
    },
  },
};
export default function () { http.get(__ENV.URL); }
"""
TREND_STATS = "avg,min,med,max,p(90),p(95),p(99)"


class BenchError(Exception):
    """Something a benchmark run cannot continue past; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{name} did not listen on {port} within 30 s")


def start(argv: list[str], port: int, name: str, log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(port, process, name)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Runs `argv` to the end: (stdout, wall seconds, CPU seconds (user + system) the kernel
    charged to the process)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"{Path(argv[0]).name} failed ({process.returncode}): {stderr[-2000:]}")
    return stdout, wall, usage.ru_utime + usage.ru_stime


def k6(args: argparse.Namespace, workdir: Path, script: str, env: dict[str, str], flags: list[str]) -> dict:
    path = workdir / "script.js"
    path.write_text(script)
    summary = workdir / "k6-summary.json"
    argv = [args.k6, "run", "--quiet", "--no-usage-report", "--summary-trend-stats", TREND_STATS,
            "--summary-export", str(summary), *flags, str(path)]
    _, wall, cpu = run_measured(argv, env={**os.environ, **env})
    metrics = json.loads(summary.read_text())["metrics"]
    d = metrics["http_req_duration"]
    failed = metrics.get("http_req_failed", {})
    return {
        "tool": "k6",
        "requests": int(metrics["http_reqs"]["count"]),
        "rate": metrics["http_reqs"]["rate"],
        "med_ms": d["med"], "p90_ms": d["p(90)"], "p95_ms": d["p(95)"], "p99_ms": d["p(99)"],
        "avg_ms": d["avg"], "max_ms": d["max"],
        # A rate metric: `passes` counts the requests for which "failed" was true.
        "failed": int(failed.get("passes", 0)),
        "dropped": int(metrics.get("dropped_iterations", {}).get("count", 0)),
        "cpu_s": cpu, "wall_s": wall,
    }


def ours(args: argparse.Namespace, url: str, flags: list[str]) -> dict:
    stdout, wall, cpu = run_measured([args.latency, "load", url, "--json", "--quiet", *flags])
    report = json.loads(stdout)
    d = report["duration_ms"]
    row = {
        "tool": "latency load",
        "requests": report["requests"],
        "rate": report["rate_per_s"],
        "med_ms": d["med"], "p90_ms": d["p90"], "p95_ms": d["p95"], "p99_ms": d["p99"],
        "avg_ms": d["avg"], "max_ms": d["max"],
        "failed": report["failed"], "dropped": report["dropped"],
        "cpu_s": cpu, "wall_s": wall,
    }
    if report.get("latency_ms"):
        row["from_schedule_med_ms"] = report["latency_ms"]["med"]
        row["from_schedule_p99_ms"] = report["latency_ms"]["p99"]
        row["late"] = report["late"]
    return row


def wrk(args: argparse.Namespace, url: str, connections: int, seconds: int) -> dict:
    script = ROOT / "bench" / "wrk-report.lua"
    stdout, wall, cpu = run_measured(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url])
    for line in stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            r = json.loads(line[len("BENCH-JSON "):])
            return {
                "tool": "wrk", "requests": r["requests"], "rate": r["requests"] / (r["duration_us"] / 1e6),
                "med_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "cpu_s": cpu, "wall_s": wall,
                "errors": r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"] + r["non_2xx_3xx"],
            }
    raise BenchError(f"wrk printed no report line:\n{stdout}")


def close(a: float, b: float, share: float, floor: float = 0.0) -> bool:
    return abs(a - b) <= max(share * max(abs(a), abs(b)), floor)


def compare(title: str, peer: dict, mine: dict) -> list[dict]:
    checks = [
        ("requests/s", "rate", 0.10, 0.0),
        ("median ms", "med_ms", 0.20, 0.2),
        ("p99 ms", "p99_ms", 0.20, 0.2),
    ]
    print(f"\n{title}")
    print(f"  {'':<22}{peer['tool']:>14}{mine['tool']:>16}   criterion")
    results = []
    for label, key, share, floor in checks:
        ok = close(peer[key], mine[key], share, floor)
        crit = f"within {share:.0%}" + (f" or {floor} ms" if floor else "")
        print(f"  {label:<22}{peer[key]:>14.3f}{mine[key]:>16.3f}   {crit}: {'ok' if ok else 'MISSED'}")
        results.append({"check": f"{title}: {label}", "ok": ok, peer["tool"]: peer[key], mine["tool"]: mine[key]})
    for label, key in [("p90 ms", "p90_ms"), ("p95 ms", "p95_ms"), ("max ms", "max_ms"),
                       ("requests", "requests"), ("failed", "failed"), ("dropped", "dropped"),
                       ("CPU s / wall s", None)]:
        if key is None:
            print(f"  {label:<22}{peer['cpu_s']:>8.2f}/{peer['wall_s']:<5.1f}{mine['cpu_s']:>10.2f}/{mine['wall_s']:<5.1f}")
        elif key in peer and key in mine:
            print(f"  {label:<22}{peer[key]:>14.3f}{mine[key]:>16.3f}")
    if "from_schedule_med_ms" in mine:
        print(f"  {'ours from the schedule':<22}{'':>14}{mine['from_schedule_med_ms']:>9.3f} med {mine['from_schedule_p99_ms']:.3f} p99"
              f" ({mine['late']} late starts)")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", required=True, help="the latency binary (release)")
    parser.add_argument("--hits-server", required=True, help="the hits-server binary (release)")
    parser.add_argument("--k6", required=True)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run [10]")
    parser.add_argument("--vus", type=int, default=10, help="closed loop: virtual users [10]")
    parser.add_argument("--pace-ms", type=float, default=5.0, help="closed loop: the target's answer time [5]")
    parser.add_argument("--rate", type=int, default=2000, help="open loop: requests per second [2000]")
    parser.add_argument("--max-vus", type=int, default=100, help="open loop: in flight at most [100]")
    parser.add_argument("--connections", type=int, default=50, help="throughput: connections [50]")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: alternating rounds [3]")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    results: list[dict] = []
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        workdir = Path(tmp)
        # 1. Closed loop against the paced target.
        port = free_port()
        paced = start([sys.executable, str(ROOT / "bench" / "paced_target.py"), "--port", str(port),
                       "--pace-ms", str(args.pace_ms)], port, "paced target", workdir / "paced.log")
        try:
            url = f"http://127.0.0.1:{port}/hits"
            d = f"{args.duration}s"
            peer = k6(args, workdir, K6_CLOSED, {"URL": url}, ["--vus", str(args.vus), "--duration", d])
            mine = ours(args, url, ["--vus", str(args.vus), "--duration", d])
        finally:
            stop(paced)
        figures["closed"] = {"k6": peer, "latency": mine}
        results += compare(f"closed loop: {args.vus} VUs x {args.duration} s, target answers after {args.pace_ms} ms",
                           peer, mine)

        port = free_port()
        server = start([args.hits_server, "--addr", f"127.0.0.1:{port}", "--store", "memory"], port,
                       "hits-server", workdir / "hits-server.log")
        try:
            url = f"http://127.0.0.1:{port}/hits"
            # 2. Open loop at the same arrival rate.
            env = {"URL": url, "RATE": str(args.rate), "DURATION": f"{args.duration}s", "MAX_VUS": str(args.max_vus)}
            peer = k6(args, workdir, K6_OPEN, env, [])
            mine = ours(args, url, ["--rate", str(args.rate), "--duration", f"{args.duration}s",
                                    "--max-vus", str(args.max_vus)])
            figures["open"] = {"k6": peer, "latency": mine}
            results += compare(f"open loop: {args.rate}/s x {args.duration} s, hits-server (memory)", peer, mine)

            # 3. Throughput against wrk, alternating.
            rounds = []
            for _ in range(args.rounds):
                w = wrk(args, url, args.connections, args.duration)
                m = ours(args, url, ["--vus", str(args.connections), "--duration", f"{args.duration}s"])
                rounds.append({"wrk": w, "latency": m, "ratio": m["rate"] / w["rate"], "cores": m["cpu_s"] / m["wall_s"]})
        finally:
            stop(server)
    ratio = statistics.median(r["ratio"] for r in rounds)
    cores = max(r["cores"] for r in rounds)
    figures["throughput"] = {"rounds": rounds, "median_ratio": ratio, "max_cores": cores}
    print(f"\nthroughput: {args.connections} connections x {args.duration} s, hits-server (memory), {args.rounds} rounds")
    print(f"  {'round':<8}{'wrk -t1 req/s':>16}{'latency load req/s':>20}{'ratio':>8}{'load cores':>12}{'wrk cores':>11}")
    for i, r in enumerate(rounds, 1):
        print(f"  {i:<8}{r['wrk']['rate']:>16.0f}{r['latency']['rate']:>20.0f}{r['ratio']:>8.3f}"
              f"{r['cores']:>12.2f}{r['wrk']['cpu_s'] / r['wrk']['wall_s']:>11.2f}")
    ok_ratio, ok_cores = ratio >= 0.9, cores <= 1.05
    print(f"  median ratio {ratio:.3f} (target >= 0.90): {'ok' if ok_ratio else 'MISSED'};"
          f" at most {cores:.2f} cores (target <= 1): {'ok' if ok_cores else 'MISSED'}")
    results += [{"check": "throughput: >= 0.9x wrk", "ok": ok_ratio, "ratio": ratio},
                {"check": "throughput: at most one core", "ok": ok_cores, "cores": cores}]
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "checks": results}, indent=2))
    missed = [r["check"] for r in results if not r["ok"]]
    print("\nall criteria met" if not missed else f"\nmissed: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench-load: {e}", file=sys.stderr)
        sys.exit(2)
