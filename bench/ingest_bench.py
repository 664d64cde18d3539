#!/usr/bin/env python3
"""ingest-server under wrk load: events per second and per server CPU-second, latency and memory,
into the null sink and through the AWS SDK into moto's Firehose -> S3, against the seed's Elixir service.

Started by scripts/bench-ingest, which builds ingest-server (release) and installs wrk and the
.venv (moto server, boto3). Standard library only: the helpers come from http_bench.py, and the
moto setup and the S3 count run in .venv/bin/python with boto3 (a dependency of moto[server]).

Each run: ingest-server with one tokio worker thread (pinned to the first CPU when there are two
or more; wrk, with one thread, and this driver get the others), a wrk warmup of POST /events
(bench/wrk-ingest.lua: one event per request, unique ids), until the buffer is flushed, then the
measured wrk run, sampling the server's RSS every 100 ms and its CPU time until what it accepted
is flushed again. Then /metrics is checked against what wrk saw, the server gets SIGTERM and must
exit 0; for Firehose the events in the bucket are counted and checked for duplicates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from http_bench import ROOT, BenchError, Sampler, get, mb, ms, run_wrk, tree_usage, wait_ready

WRK_SCRIPT = ROOT / "bench" / "wrk-ingest.lua"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
# The original event-ingest service (its Elixir rewrite, as its write-up measured it): "up to
# 12,000,000 events per hour" on "on average 4 nodes at 1.1 CPU", "RAM ... 100 to 150MB" per node.
SEED = {
    "source": "the original event-ingest service's write-up (Elixir rewrite)",
    "service": "Elixir (seed)",
    "events_per_hour": 12_000_000,
    "nodes": 4,
    "cpus_per_node": 1.1,
    "rss_mb_per_node": [100, 150],
}
SEED_EVENTS_PER_S = SEED["events_per_hour"] / 3600  # 3,333 over all nodes
SEED_EVENTS_PER_CPU_S = 760  # 3,333 / (4 x 1.1) = 757.6, rounded as the issue states it
PER_CORE_TARGET = 50_000  # events per server CPU-second into the null sink
RSS_TARGET_MB = 50
ID_RUN_STRIDE = 10**12  # wrk-ingest.lua: base + thread * 10^10 + n; one base per wrk run

ACCEPTED = "ingest_accepted_events_total"
FLUSHED = "ingest_flushed_events_total"
REJECTED = "ingest_rejected_requests_total"
BUFFER = "ingest_buffer_bytes"

# Runs in .venv/bin/python (boto3): `setup ENDPOINT` creates a bucket and a DirectPut delivery
# stream writing into it, as crates/aws-setup's emulator::delivery_stream does; `count ENDPOINT
# BUCKET` reads every object and counts its lines and distinct event ids. Prints one JSON object.
MOTO_HELPER = r"""
import json, os, sys, uuid
import boto3
from botocore.config import Config

command, endpoint = sys.argv[1], sys.argv[2]
region = os.environ.get("AWS_REGION", "eu-west-2")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  config=Config(s3={"addressing_style": "path"}))
if command == "setup":
    suffix = uuid.uuid4().hex[:12]
    bucket, stream = f"bench-ingest-{suffix}", f"bench-events-{suffix}"
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    firehose = boto3.client("firehose", endpoint_url=endpoint, region_name=region)
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-delivery",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
        },
    )
    print(json.dumps({"bucket": bucket, "stream": stream}))
elif command == "count":
    bucket = sys.argv[3]
    objects = size = lines = bad = 0
    ids = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects += 1
            size += len(body)
            for line in body.splitlines():
                if not line.strip():
                    continue
                lines += 1
                try:
                    ids.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
    print(json.dumps({"objects": objects, "bytes": size, "lines": lines,
                      "distinct_ids": len(ids), "unparsable_lines": bad}))
"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Run:
    key: str
    label: str
    sink: str
    warmup: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    rss_idle_kb: int = 0
    rss_load_kb: list[int] = field(default_factory=list)
    rss_peak_kb: int = 0
    rss_after_kb: int = 0
    cpu_seconds: float = 0.0  # server, from the measured run's start until its events were flushed
    window_seconds: float = 0.0  # wall time of that same window
    drain_seconds: float = 0.0  # from wrk's end until the buffer was flushed
    metrics_before: dict = field(default_factory=dict)  # after the warmup, flushed
    metrics_after: dict = field(default_factory=dict)  # after the measured run, flushed
    exit_code: int | None = None
    shutdown_log: list[str] = field(default_factory=list)
    delivered: dict | None = None  # firehose: what is in the bucket
    emulator_cpu_seconds: float | None = None  # moto, over the same window
    checks: list[Check] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.run["ok"] / (self.run["duration_us"] / 1e6)

    @property
    def per_cpu_second(self) -> float:
        return self.run["ok"] / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    @property
    def sink_events_per_s(self) -> float:
        flushed = self.metrics_after.get(FLUSHED, 0) - self.metrics_before.get(FLUSHED, 0)
        return flushed / self.window_seconds if self.window_seconds > 0 else float("nan")

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {metric name: value}, summed over label sets."""
    values: dict[str, float] = {}
    pattern = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and not line.startswith("#"):
            try:
                values[match[1]] = values.get(match[1], 0.0) + float(match[3])
            except ValueError:
                pass
    return values


def metrics(base: str) -> dict[str, float]:
    status, body = get(f"{base}/metrics", 5.0)
    if status != 200:
        raise BenchError(f"GET {base}/metrics answered {status}")
    values = parse_metrics(body)
    missing = [name for name in (ACCEPTED, FLUSHED, REJECTED, BUFFER) if name not in values]
    if missing:
        raise BenchError(f"/metrics lacks {', '.join(missing)}; it has: {', '.join(sorted(values)) or body[:500]!r}")
    return values


def settle(base: str, timeout: float) -> tuple[dict[str, float], bool]:
    """Polls /metrics until every accepted event is flushed and the buffer is empty."""
    deadline = time.monotonic() + timeout
    while True:
        values = metrics(base)
        if values[FLUSHED] >= values[ACCEPTED] and values[BUFFER] == 0:
            return values, True
        if time.monotonic() >= deadline:
            return values, False
        time.sleep(0.1)


def cpus() -> tuple[set[int], set[int]] | None:
    """(server CPUs, load CPUs) when the server can have a CPU of its own, else None."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None
    return {available[0]}, set(available[1:])


def start_server(binary: str, label: str, sink_args: list[str], extra_env: dict[str, str],
                 workdir: Path, log: Path, server_cpus: set[int] | None) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")} | {
        "TOKIO_WORKER_THREADS": "1",
        # warn, plus the server's two shutdown lines (they say what was delivered and spilled).
        "RUST_LOG": "warn,ingest_fn::server=info",
    } | extra_env
    argv = [binary, "--addr", "127.0.0.1:0", *sink_args]
    pin = (lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None
    with open(log, "wb") as log_file:
        process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=workdir,
                                   preexec_fn=pin)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            base = found[1]
            wait_ready(process, base, label, log)
            return process, base
        if process.poll() is not None:
            raise BenchError(f"{label} exited with {process.returncode} before listening; "
                             f"log: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    process.kill()
    raise BenchError(f"{label} printed no `listening on` line within 30 s; log: {log.read_text()[-2000:]}")


def wrk(args: argparse.Namespace, base: str, seconds: int, id_base: int) -> dict:
    os.environ["INGEST_BENCH_ID_BASE"] = str(id_base)  # read by wrk-ingest.lua
    os.environ["WRK_REPORT_LUA"] = str(ROOT / "bench" / "wrk-report.lua")
    return run_wrk(args, f"{base}/events", seconds, WRK_SCRIPT)


def stop(process: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then the exit code; SIGKILL (and None) if it does not exit within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def measure(run: Run, args: argparse.Namespace, workdir: Path, *, sink_args: list[str],
            extra_env: dict[str, str], duration: int, id_base: int, settle_timeout: float,
            server_cpus: set[int] | None, emulator_sid: int | None = None) -> subprocess.Popen:
    log = workdir / f"{run.key}.log"
    process, base = start_server(args.ingest_server, run.label, sink_args, extra_env, workdir, log, server_cpus)
    sampler = Sampler(process.pid)
    try:
        time.sleep(0.5)
        run.rss_idle_kb, _ = tree_usage(process.pid)
        sampler.start()
        say(f"{run.label}: warmup {args.warmup} s ...")
        run.warmup = wrk(args, base, args.warmup, id_base)
        run.metrics_before, settled = settle(base, settle_timeout)
        if not settled:
            raise BenchError(f"{run.label}: the warmup's events were not flushed within {settle_timeout:.0f} s: "
                             f"{run.metrics_before}")
        _, cpu_before = tree_usage(process.pid)
        emulator_before = tree_usage(emulator_sid)[1] if emulator_sid else 0.0
        started = time.monotonic()
        sampler.loading.set()
        say(f"{run.label}: measuring {duration} s ...")
        run.run = wrk(args, base, duration, id_base + ID_RUN_STRIDE)
        wrk_done = time.monotonic()
        run.metrics_after, settled = settle(base, settle_timeout)
        sampler.loading.clear()
        settled_at = time.monotonic()
        _, cpu_after = tree_usage(process.pid)
        if emulator_sid:
            run.emulator_cpu_seconds = tree_usage(emulator_sid)[1] - emulator_before
        run.cpu_seconds = cpu_after - cpu_before
        run.window_seconds = settled_at - started
        run.drain_seconds = settled_at - wrk_done
        run.rss_load_kb = list(sampler.load_samples)
        run.rss_after_kb, _ = tree_usage(process.pid)
        sampler.stopping.set()
        sampler.join()
        run.rss_peak_kb = max(sampler.peak, run.rss_idle_kb, run.rss_after_kb)
        if not settled:
            say(f"{run.label}: not everything was flushed within {settle_timeout:.0f} s after the load")
        say(f"{run.label}: SIGTERM ...")
        run.exit_code = stop(process, args.shutdown_wait)
        run.shutdown_log = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-6:]
        return process
    finally:
        sampler.stopping.set()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def common_checks(run: Run, args: argparse.Namespace, errors_fail: bool) -> None:
    seen = run.warmup["ok"] + run.run["ok"]
    accepted = run.metrics_after[ACCEPTED]
    # wrk stops with at most one request in flight per connection, twice (warmup, measured run):
    # the server may have taken those although wrk never saw the answer.
    slack = 2 * args.connections
    run.checks.append(Check("accepted vs wrk", 0 <= accepted - seen <= slack, (
        f"/metrics {ACCEPTED} {accepted:.0f}; wrk saw {seen} 2xx ({run.warmup['ok']} warmup + "
        f"{run.run['ok']} measured); difference {accepted - seen:.0f} = requests in flight when wrk "
        f"stopped (allowed 0..{slack})")))
    flushed, buffered = run.metrics_after[FLUSHED], run.metrics_after[BUFFER]
    run.checks.append(Check("flushed", flushed == accepted and buffered == 0,
                            f"{FLUSHED} {flushed:.0f} of {accepted:.0f} accepted, {BUFFER} {buffered:.0f}"))
    rejected = run.metrics_after[REJECTED]
    non_2xx = run.warmup["non_2xx_3xx"] + run.run["non_2xx_3xx"]
    socket_errors = run.warmup["socket_errors"] + run.run["socket_errors"]
    detail = f"{REJECTED} {rejected:.0f}; wrk: {non_2xx} non-2xx, {socket_errors} socket errors"
    if errors_fail:
        run.checks.append(Check("errors", rejected == 0 and non_2xx == 0 and socket_errors == 0, detail))
    else:  # refusals under an overloaded sink are backpressure (503), not lost events
        run.checks.append(Check("errors", socket_errors == 0, detail + " (503s are the buffer's backpressure)"))
    run.checks.append(Check("exit", run.exit_code == 0,
                            f"exit code {run.exit_code} after SIGTERM" if run.exit_code is not None
                            else f"still running {args.shutdown_wait:.0f} s after SIGTERM (killed)"))


def null_run(args: argparse.Namespace, workdir: Path, server_cpus: set[int] | None) -> Run:
    run = Run("null", "null sink", "null")
    measure(run, args, workdir, sink_args=["--sink", "null", "--spill", "off"], extra_env={},
            duration=args.duration, id_base=0, settle_timeout=10, server_cpus=server_cpus)
    common_checks(run, args, errors_fail=True)
    return run


def moto_helper(*argv: str) -> dict:
    out = subprocess.run([str(VENV_PYTHON), "-c", MOTO_HELPER, *argv], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"moto helper {argv[0]} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def firehose_run(args: argparse.Namespace, workdir: Path, server_cpus: set[int] | None) -> Run:
    check = subprocess.run([str(VENV_PYTHON), "-c", "import boto3"], capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError(f"{VENV_PYTHON} has no boto3 (moto[server] should bring it; run scripts/bootstrap): "
                         f"{check.stderr.strip()[-500:]}")
    pidfile = workdir / "moto.pid"
    # Its own session (to measure its CPU) and every CPU (it is the bottleneck of this run).
    all_cpus = os.sched_getaffinity(0) | (server_cpus or set())
    starter = subprocess.Popen([str(ROOT / "scripts" / "moto"), "start", str(pidfile)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: os.sched_setaffinity(0, all_cpus))
    out, err = starter.communicate(timeout=60)
    try:
        if starter.returncode != 0:
            raise BenchError(f"scripts/moto start failed: {err.strip()}")
        endpoint = out.strip().splitlines()[-1]
        setup = moto_helper("setup", endpoint)
        stream = setup["stream"]
        run = Run("firehose", "Firehose -> moto", f"firehose:{stream}")
        say(f"{run.label}: moto at {endpoint}, stream {stream} -> s3://{setup['bucket']}/events/")
        spill = workdir / "firehose-spill.ndjson"
        measure(run, args, workdir, sink_args=["--sink", run.sink, "--spill", str(spill)],
                extra_env={"AWS_ENDPOINT_URL": endpoint}, duration=args.moto_duration, id_base=10 * ID_RUN_STRIDE,
                settle_timeout=args.moto_drain_timeout, server_cpus=server_cpus, emulator_sid=starter.pid)
        common_checks(run, args, errors_fail=False)
        say(f"{run.label}: counting the events in s3://{setup['bucket']} ...")
        run.delivered = moto_helper("count", endpoint, setup["bucket"])
        run.delivered["bucket"] = setup["bucket"]
        spilled = sum(1 for line in spill.read_text().splitlines() if line.strip()) if spill.exists() else 0
        run.delivered["spilled_lines"] = spilled
        lines, accepted = run.delivered["lines"], run.metrics_after[ACCEPTED]
        seen = run.warmup["ok"] + run.run["ok"]
        slack = 2 * args.connections
        run.checks.append(Check("in the bucket", lines == accepted and 0 <= lines - seen <= slack, (
            f"{lines} events in {run.delivered['objects']} objects; {accepted:.0f} accepted (/metrics); "
            f"wrk saw {seen} 2xx, difference {lines - seen} (in flight when wrk stopped, allowed 0..{slack})")))
        run.checks.append(Check("no duplicates", run.delivered["distinct_ids"] == lines
                                and run.delivered["unparsable_lines"] == 0,
                                f"{run.delivered['distinct_ids']} distinct ids in {lines} lines, "
                                f"{run.delivered['unparsable_lines']} unparsable"))
        run.checks.append(Check("spill", spilled == 0, f"{spilled} events in the spill file"))
        return run
    finally:
        subprocess.run([str(ROOT / "scripts" / "moto"), "stop", str(pidfile)], check=False)


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def ratio(per_cpu_second: float) -> str:
    """ingest-server's events per CPU-second over the Elixir service's."""
    x = per_cpu_second / SEED_EVENTS_PER_CPU_S
    return "n/a" if x != x else f"x{x:,.0f}" if x >= 10 else f"x{x:.2f}"


def report(runs: list[Run], args: argparse.Namespace, pinning: tuple[set[int], set[int]] | None) -> dict:
    print()
    measured = f"measured {args.duration} s into the null sink" + (
        f", {args.moto_duration} s into Firehose" if any(r.key == "firehose" for r in runs) else "")
    print(f"POST /events over loopback, one event per request (bench/wrk-ingest.lua, unique ids): wrk "
          f"{args.threads} thread(s), {args.connections} connections, keep-alive, after a {args.warmup} s warmup;"
          f" {measured}")
    if pinning:
        print(f"machine: {os.cpu_count()} CPUs; ingest-server (TOKIO_WORKER_THREADS=1) pinned to CPU "
              f"{','.join(map(str, sorted(pinning[0])))}, wrk and this driver to CPU "
              f"{','.join(map(str, sorted(pinning[1])))}")
    else:
        print(f"machine: {os.cpu_count()} CPU(s) - not pinned: ingest-server (TOKIO_WORKER_THREADS=1) shares with wrk")
    print("events per CPU-second = 2xx of the measured run / the server's user+system CPU time from its start"
          " until those events were flushed to the sink (= events per second on one fully used core)")
    print()
    elixir = SEED["service"]
    labels = [r.label for r in runs] + [elixir]

    def row(name: str, values: list[str], seed: str) -> tuple[str, list[str]]:
        return name, values + [seed]

    rows = [
        row("server", ["1 tokio worker" for _ in runs], f"{SEED['nodes']} nodes x {SEED['cpus_per_node']} CPU"),
        row("events/s (wall, accepted)", [fmt(r.events_per_s) for r in runs], fmt(SEED_EVENTS_PER_S)),
        row("events/s into the sink", [fmt(r.sink_events_per_s) for r in runs], "n/a"),
        row("events per CPU-second", [fmt(r.per_cpu_second) for r in runs], f"~{SEED_EVENTS_PER_CPU_S}"),
        row(f"  x {elixir.split()[0]} per CPU", [ratio(r.per_cpu_second) for r in runs],
            "x1"),
        row("latency p50 (ms)", [ms(r.run["p50_us"]) for r in runs], "n/a"),
        row("latency p99 (ms)", [ms(r.run["p99_us"]) for r in runs], "n/a"),
        row("latency max (ms)", [ms(r.run["max_us"]) for r in runs], "n/a"),
        row("responses 2xx (measured)", [fmt(r.run["ok"]) for r in runs], ""),
        row("non-2xx / socket errors", [f"{r.run['non_2xx_3xx']} / {r.run['socket_errors']}" for r in runs], ""),
        row("drain after the load (s)", [f"{r.drain_seconds:.2f}" for r in runs], ""),
        row("server CPU time (s)", [f"{r.cpu_seconds:.2f}" for r in runs], ""),
        row("moto CPU time (s)", [f"{r.emulator_cpu_seconds:.2f}" if r.emulator_cpu_seconds is not None else ""
                                  for r in runs], "") if any(r.emulator_cpu_seconds is not None for r in runs) else None,
        row("RSS idle (MB)", [mb(r.rss_idle_kb) for r in runs], ""),
        row("RSS under load, median (MB)",
            [mb(statistics.median(r.rss_load_kb)) if r.rss_load_kb else "n/a" for r in runs], ""),
        row("RSS peak (MB)", [mb(r.rss_peak_kb) for r in runs],
            f"{SEED['rss_mb_per_node'][0]}-{SEED['rss_mb_per_node'][1]}/node"),
        row("RSS after the load (MB)", [mb(r.rss_after_kb) for r in runs], ""),
    ]
    rows = [r for r in rows if r]
    width = max(len(name) for name, _ in rows) + 2
    columns = [max(len(label), *(len(values[i]) for _, values in rows), 10) + 2 for i, label in enumerate(labels)]
    print(" " * width + "".join(label.rjust(c) for label, c in zip(labels, columns)))
    for name, values in rows:
        print(name.ljust(width) + "".join(v.rjust(c) for v, c in zip(values, columns)))
    print(f"{elixir}: {SEED['events_per_hour']:,} events/hour = {SEED_EVENTS_PER_S:,.0f} events/s on "
          f"{SEED['nodes']} nodes x {SEED['cpus_per_node']} CPU on average = {SEED_EVENTS_PER_S / (SEED['nodes'] * SEED['cpus_per_node']):.1f}"
          f" (~{SEED_EVENTS_PER_CPU_S}) events per CPU-second; {SEED['source']}")
    for r in runs:
        if r.key != "firehose" or r.emulator_cpu_seconds is None:
            continue
        busy = r.emulator_cpu_seconds / r.window_seconds if r.window_seconds > 0 else float("nan")
        print("Firehose -> moto: the real AWS SDK path (PutRecordBatch over HTTP) into an emulator that is one Python"
              " process serving one request at a time (scripts/moto_server.py): its throughput, not ingest-server's,"
              " bounds 'events/s into the sink' once it is saturated; the server answers 202 from its buffer"
              f" meanwhile. Here moto was busy {busy:.0%} of the measured window ("
              + ("saturated: the sink figures are moto's limit)" if busy >= 0.8 else
                 f"not saturated: packed records make few calls, {r.delivered['objects'] if r.delivered else '?'}"
                 " PutRecord(Batch) calls = objects in the bucket in all)"))

    print()
    null = next((r for r in runs if r.key == "null"), None)
    targets = {}
    if null:
        per_core = null.per_cpu_second
        targets["null_events_per_cpu_second"] = {"value": per_core, "target": PER_CORE_TARGET,
                                                 "met": per_core >= PER_CORE_TARGET}
        print(f"target >= {PER_CORE_TARGET:,} events/s per core into the null sink: {fmt(per_core)} "
              f"-> {'met' if per_core >= PER_CORE_TARGET else 'NOT met'} "
              f"({ratio(per_core)} the Elixir service per CPU)")
    for r in runs:
        peak_mb = r.rss_peak_kb / 1024
        targets[f"{r.key}_rss_peak_mb"] = {"value": peak_mb, "target": RSS_TARGET_MB, "met": peak_mb <= RSS_TARGET_MB}
        print(f"target RSS <= {RSS_TARGET_MB} MB ({r.label}): peak {peak_mb:.1f} MB "
              f"-> {'met' if peak_mb <= RSS_TARGET_MB else 'NOT met'}")

    print()
    for r in runs:
        for c in r.checks:
            print(f"check {r.label}, {c.name}: {'OK' if c.ok else 'WRONG'} - {c.detail}")
        if r.shutdown_log:
            print(f"{r.label} log, last lines:")
            for line in r.shutdown_log:
                print(f"    {line}")
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ingest-server", required=True, help="the release ingest-server binary")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds, null sink (default 10)")
    parser.add_argument("--moto-duration", type=int, default=5, help="measured seconds, Firehose (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="warmup seconds (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--no-moto", action="store_true", help="only the null sink")
    parser.add_argument("--moto-drain-timeout", type=float, default=180,
                        help="seconds to wait for the Firehose buffer to reach moto (default 180)")
    parser.add_argument("--shutdown-wait", type=float, default=40,
                        help="seconds to wait for the server's exit after SIGTERM (default 40)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if min(args.duration, args.moto_duration, args.warmup, args.connections, args.threads) < 1:
        parser.error("--duration, --moto-duration, --warmup, --connections and --threads must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk gives each thread its share)")

    pinning = cpus()
    if pinning:
        os.sched_setaffinity(0, pinning[1])  # wrk inherits it; the server is moved to pinning[0]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        failed = False
        try:
            runs.append(null_run(args, workdir, pinning[0] if pinning else None))
            if not args.no_moto:
                runs.append(firehose_run(args, workdir, pinning[0] if pinning else None))
        except BenchError as e:
            print(f"bench-ingest: {e}", file=sys.stderr)
            failed = True
        if not runs:
            return 1
        targets = report(runs, args, pinning)
    ok = not failed and all(r.ok for r in runs)
    print()
    print("bench-ingest: all checks OK" if ok else "bench-ingest: SOME CHECKS FAILED (see above)")
    if args.json:
        args.json.write_text(json.dumps({
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "pinning": {"server_cpus": sorted(pinning[0]), "load_cpus": sorted(pinning[1])} if pinning else None,
            "seed": SEED | {"events_per_s": SEED_EVENTS_PER_S, "events_per_cpu_second": SEED_EVENTS_PER_CPU_S},
            "runs": [asdict(r) | {"events_per_s": r.events_per_s, "events_per_cpu_second": r.per_cpu_second,
                                  "sink_events_per_s": r.sink_events_per_s,
                                  "ratio_to_seed_per_cpu": r.per_cpu_second / SEED_EVENTS_PER_CPU_S, "ok": r.ok}
                     for r in runs],
            "targets": targets,
            "ok": ok,
        }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
