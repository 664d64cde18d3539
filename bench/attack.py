#!/usr/bin/env python3
"""The attacks of issue 19 against hits-server (memory store), on loopback, with figures.

Started by scripts/attack, which builds hits-server (release). Standard library only. Every
attack is bounded in connections and time, talks to 127.0.0.1 only, and stops the server it
started. Sections (`--only` picks some):

  slowloris   200 connections send a request line and then one header byte a second; how many
              the server still holds before and after the header-read timeout, and how long a
              new client waits for its answer meanwhile;
  cap         hits-server under `ulimit -n 256` (its cap is lowered to 192) against 1,000 silent
              connections: how many it holds, how many get the 503, how long a new client waits
              for an answer during the flood and after it, and the log lines the refusals made;
  memory      RSS before, during and after 5,000 kept-alive idle connections (each sent one
              request and got its answer), over several rounds; then 5,000 silent connections;
              then 5,000 against the default cap of 4,096.

`--env KEY=VALUE` passes a variable to the server (an allocator setting, say).
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
REQUEST = b"GET /hits HTTP/1.1\r\nHost: attack\r\n\r\n"


class Server:
    """hits-server as a child process: its address from the `listening on` line, its log kept."""

    def __init__(self, binary: str, args: list[str], env: dict[str, str], nofile: int | None = None):
        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen(
            [binary, "--addr", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "HITS_STORE": "memory", "RUST_LOG": "info", **env},
            preexec_fn=limit, text=True,
        )
        self.lines: list[str] = []
        listening = threading.Event()
        self.addr: tuple[str, int] = ("127.0.0.1", 0)

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("listening on http://"):
                    host, _, port = line.split()[2].removeprefix("http://").rpartition(":")
                    self.addr = (host, int(port))
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(30):
            self.stop()
            sys.exit("attack: hits-server did not say where it listens:\n" + "\n".join(self.lines))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE / 1e6

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr, timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s: socket.socket) -> bytes:
    """One small response (head and body), or what came before the connection ended."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def timed_get(addr: tuple[str, int]) -> tuple[float, str]:
    """A new client's `GET /hits`: milliseconds to the answer, and its status (or what happened)."""
    started = time.monotonic()
    try:
        with connect(addr) as s:
            s.sendall(REQUEST)
            answer = read_response(s)
    except OSError as e:
        return (time.monotonic() - started) * 1e3, f"failed: {e}"
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") if answer else "closed without an answer"
    return (time.monotonic() - started) * 1e3, status


def still_open(sockets: list[socket.socket]) -> int:
    """How many of these connections the server has not closed (no EOF, no reset, nothing sent)."""
    count = 0
    for s in sockets:
        s.setblocking(False)
        try:
            count += 0 if s.recv(1, socket.MSG_PEEK) == b"" else 1
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def readable(sockets: list[socket.socket], wait: float) -> set[socket.socket]:
    """The sockets with something to read (an answer, EOF) within `wait` seconds of each other."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    ready: set[socket.socket] = set()
    while True:
        events = poller.poll(wait * 1000)
        if not events:
            return ready
        for fd, _ in events:
            ready.add(by_fd[fd])
            poller.unregister(fd)


def close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        s.close()
    sockets.clear()


def wait_descriptors(server: Server, at_most: int, limit: float = 20.0) -> None:
    """Until the server holds at most `at_most` descriptors (the flood's connections closed)."""
    deadline = time.monotonic() + limit
    while server.descriptors() > at_most and time.monotonic() < deadline:
        time.sleep(0.05)


def slowloris(binary: str, env: dict[str, str]) -> None:
    connections, timeout = 200, 10.0
    print(f"\n== slowloris: {connections} connections, a header byte a second; --header-read-timeout default "
          f"({timeout:g} s)")
    server = Server(binary, [], env)
    try:
        sockets = []
        for _ in range(connections):
            s = connect(server.addr)
            s.sendall(b"GET /hits HTTP/1.1\r\nHost: attack\r\nX-Slow: ")
            sockets.append(s)
        started = time.monotonic()
        answered: list[tuple[float, str]] = []
        samples: dict[str, int] = {}
        while time.monotonic() - started < timeout + 3:
            for s in sockets:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            elapsed = time.monotonic() - started
            if elapsed >= 5 and "5 s" not in samples:
                samples["5 s"] = still_open(sockets)
                answered.append(timed_get(server.addr))
            time.sleep(1)
        samples[f"{timeout + 3:g} s"] = still_open(sockets)
        for at, held in samples.items():
            print(f"  held by the server after {at}: {held} of {connections}")
        for ms, status in answered:
            print(f"  a new client meanwhile: {status} in {ms:.1f} ms")
        close_all(sockets)
    finally:
        server.stop()


def cap(binary: str, env: dict[str, str]) -> None:
    flood, nofile = 1000, 256
    print(f"\n== connection cap: ulimit -n {nofile}, {flood} silent connections")
    server = Server(binary, [], env, nofile=nofile)
    try:
        clamp = next((l for l in server.lines if "capping at" in l), None)
        if clamp:
            print("  start: " + clamp.split("WARN", 1)[-1].strip()[:160])
        sockets, failed = [], 0
        started = time.monotonic()
        for _ in range(flood):
            try:
                sockets.append(connect(server.addr))
            except OSError:
                failed += 1
        # A refused connection has its 503 waiting; a held one has nothing to read.
        answered = readable(sockets, wait=0.5)
        refused = 0
        for s in answered:
            refused += read_response(s).startswith(b"HTTP/1.1 503")
            s.close()
        held = [s for s in sockets if s not in answered]
        flooded = time.monotonic() - started
        during = timed_get(server.addr)
        print(f"  {len(held)} held, {refused} answered 503 and closed, {failed} failed to connect ({flooded:.1f} s)")
        print(f"  a new client during the flood: {during[1]} in {during[0]:.1f} ms")
        baseline = 16
        close_all(held)
        wait_descriptors(server, baseline + 8)
        after = timed_get(server.addr)
        print(f"  a new client after the flood: {after[1]} in {after[0]:.1f} ms")
        time.sleep(1.2)  # the last second's count is logged a second after the one before
        lines = [l for l in server.lines if "connection limit reached" in l]
        counted = sum(int(w.removeprefix("refused=")) for l in lines for w in l.split() if w.startswith("refused="))
        print(f"  log: {len(lines)} cap line(s) counting {counted} refusals, e.g.")
        for line in lines[:2]:
            print("    " + line[:200])
    finally:
        server.stop()


def idle_connections(server: Server, count: int, request: bool) -> tuple[list[socket.socket], int]:
    """`count` connections, each with one answered request (kept alive) or silent; and how many
    got a 503 at the cap (closed)."""
    sockets, refused = [], 0
    for _ in range(count):
        s = connect(server.addr)
        if request:
            s.sendall(REQUEST)
            answer = read_response(s)
            if not answer.startswith(b"HTTP/1.1 200"):
                refused += 1
                s.close()
                continue
        sockets.append(s)
    if not request:
        for s in readable(sockets, wait=0.2):
            refused += 1
            sockets.remove(s)
            s.close()
    return sockets, refused


def flood_rss(server: Server, count: int, request: bool) -> tuple[float, float, int]:
    """`count` idle connections at once, then closed: RSS (MB) while they are open and once the
    server has closed its side; and how many were answered 503 at the cap."""
    base_fds = server.descriptors()
    sockets, refused = idle_connections(server, count, request)
    time.sleep(0.5)
    during = server.rss_mb()
    close_all(sockets)
    wait_descriptors(server, base_fds)
    time.sleep(1)
    return during, server.rss_mb(), refused


def memory(binary: str, env: dict[str, str], rounds: int) -> None:
    count = 5000
    print(f"\n== memory: {count} idle connections at once, then closed (RSS in MB)"
          + (f"; server env {env}" if env else ""))
    args = ["--max-connections", "10000", "--header-read-timeout", "60"]
    for request, what in [(False, "silent (no byte sent)"), (True, "kept alive after one request")]:
        server = Server(binary, args, env)
        try:
            for _ in range(3):
                timed_get(server.addr)
            before = server.rss_mb()
            print(f"  {what}, {' '.join(args)}: RSS at start {before:.1f}")
            for round_ in range(1, (rounds if request else 2) + 1):
                during, after, _ = flood_rss(server, count, request)
                print(f"    round {round_}: during {during:.1f} ({(during - before) * 1e3 / count:.1f} KB a "
                      f"connection over the start), after they closed {after:.1f}")
        finally:
            server.stop()
    server = Server(binary, ["--header-read-timeout", "60"], env)
    try:
        timed_get(server.addr)
        before = server.rss_mb()
        during, after, refused = flood_rss(server, count, request=True)
        print(f"  kept alive, the default cap (4096): {count - refused} held, {refused} answered 503; "
              f"RSS {before:.1f} at start, {during:.1f} during, {after:.1f} after")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits-server", required=True, help="the hits-server binary")
    parser.add_argument("--only", action="append", choices=["slowloris", "cap", "memory"])
    parser.add_argument("--rounds", type=int, default=5, help="memory rounds (default 5)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 12000:
        sys.exit(f"attack: needs 12000 descriptors for its clients (ulimit -Hn is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    binary = str(Path(args.hits_server).resolve())
    only = args.only or ["slowloris", "cap", "memory"]
    print(f"attack: {binary} on 127.0.0.1, {os.cpu_count()} CPUs")
    if "slowloris" in only:
        slowloris(binary, env)
    if "cap" in only:
        cap(binary, env)
    if "memory" in only:
        memory(binary, env, args.rounds)


if __name__ == "__main__":
    main()
