"""A load benchmark for `mnist-tiny serve` (not a test): N concurrent clients posting PNGs to 127.0.0.1.

    python -m mnist_tiny.embed.loadtest --clients 16 --seconds 30

Starts its own server on a free local port, runs for a bounded time, and prints throughput, p50/p99 latency,
errors, the server's peak memory and the CPU time per request of the server and of the clients as JSON. The clients
are keep-alive connections on one asyncio loop in this process, sharing the machine with the server as a real
local client would, at as little CPU as a Python client can (`_Client`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """The server and its worker processes (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [pid, *(int(c) for c in f.read().split())]
    except OSError:
        return [pid]


def _cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time (user + system) so far of the server and of each of its worker processes."""
    out = {}
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return out


def _is_worker(pid: int) -> bool:
    """A worker process of uvicorn's, not multiprocessing's resource tracker (the server's other child)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"resource_tracker" not in f.read()
    except OSError:
        return True


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the server and its worker processes, summed (Linux /proc)."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration):
            pass
    return total


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class _Client(asyncio.Protocol):
    """One keep-alive connection posting one image after another until `stop_at`: a request is a prepared byte
    string and a response is only split at its Content-Length, so that the client costs the shared cores as little
    as it can (0.16–0.23 ms of CPU a request here; http.client in 16 threads took 0.28–0.41)."""

    def __init__(self, requests: list[bytes], first: int, stop_at: float, latencies: list[float], done) -> None:
        self.requests, self.next, self.stop_at, self.latencies, self.done = requests, first, stop_at, latencies, done
        self.buffer, self.errors, self.transport, self.started = bytearray(), 0, None, 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if time.perf_counter() >= self.stop_at:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(self.requests[self.next % len(self.requests)])
        self.next += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = next((int(line[15:]) for line in head.split(b"\r\n") if line.startswith(b"content-length:")), 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4:end + 4 + length]
        self.latencies.append(time.perf_counter() - self.started)
        if not (head.startswith(b"http/1.1 200") and b'"digit"' in body):
            self.errors += 1
        del self.buffer[:end + 4 + length]
        self._send()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _clients(port: int, clients: int, requests: list[bytes], stop_at: float) -> tuple[list[float], int]:
    """`clients` connections, each as `_Client`, until `stop_at`; a connection the server closes early is opened
    again (its request counts as an error), and a response not back 30 s after `stop_at` is one."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0

    async def one(k: int, opened: asyncio.Event) -> None:
        nonlocal errors
        first = k
        while time.perf_counter() < stop_at:
            done = loop.create_future()
            try:
                _, client = await loop.create_connection(
                    lambda: _Client(requests, first, stop_at, latencies, done), "127.0.0.1", port)
            except OSError:  # refused or reset: an error, and the next try after a pause
                errors += 1
                await asyncio.sleep(0.1)
                continue
            finally:
                opened.set()
            try:
                await asyncio.wait_for(done, max(1.0, stop_at - time.perf_counter() + 30))
            except asyncio.TimeoutError:
                client.errors += 1
                client.transport.abort()
            errors += client.errors
            if time.perf_counter() < stop_at:  # closed by the server in the middle of a run
                errors += 1
                first = client.next

    # One connection after another, each posting as soon as it is open, as clients arriving would: connected all at
    # once, they would all be accepted by whichever worker process woke first and stay there (half the throughput
    # in a third of the runs with two workers), which says how 16 simultaneous connections fall, not what the
    # server can serve.
    tasks = []
    for k in range(clients):
        opened = asyncio.Event()
        tasks.append(asyncio.ensure_future(one(k, opened)))
        waiter = asyncio.ensure_future(opened.wait())
        await asyncio.wait([tasks[-1], waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    await asyncio.gather(*tasks)
    return latencies, errors


def run(clients: int, seconds: float, images: list[bytes], workers: int = 1, settle: float = 5.0) -> dict:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mnist_tiny", "serve", "--port", str(port), "--workers",
                               str(workers)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
        # The port opens before the worker processes have loaded the app: clients that connected now would all be
        # taken by the first worker ready, and their keep-alive connections would stay there (half the throughput
        # with two workers). So the workers get `settle` seconds first.
        time.sleep(settle)
        requests = [b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(image) + image for image in images]
        cpu_before, client_before = _cpu_seconds(server.pid), _own_cpu_seconds()
        began = time.perf_counter()
        latencies, errors = asyncio.run(_clients(port, clients, requests, began + seconds))
        elapsed = time.perf_counter() - began
        cpu_after, client_cpu = _cpu_seconds(server.pid), _own_cpu_seconds() - client_before
        spent = {p: cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after}
        server_cpu = sum(spent.values())
        latencies.sort()
        q = statistics.quantiles(latencies, n=100)
        return {"clients": clients, "workers": workers, "seconds": round(elapsed, 1), "requests": len(latencies), "errors": errors,
                "per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(1000 * q[49], 1),
                "p99_ms": round(1000 * q[98], 1), "server_peak_mb": round(_peak_rss_mb(server.pid), 1),
                # what a request costs the server, whoever else shares the cores (the clients do): less noisy
                # than requests/s for comparing two versions
                "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(latencies)), 2),
                "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, len(latencies)), 2),
                # each worker process's CPU seconds: one near zero means the other took every connection
                "worker_cpu_s": [round(spent[p], 1) for p in sorted(spent) if p != server.pid and _is_worker(p)]
                if workers > 1 else None}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds for the workers to start, before clients connect")
    parser.add_argument("--images", type=Path, default=Path(__file__).resolve().parents[2] / "examples")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600 or not all(1 <= c <= 256 for c in args.clients) or not 0 <= args.settle <= 60:
        raise SystemExit("--seconds 1..600, --clients 1..256 and --settle 0..60")
    # The examples that hold digits: a blank page or a letter is answered 422 (no digit), which counts as an error.
    pngs = [p.read_bytes() for p in sorted(args.images.glob("*.png")) if not p.name.startswith(("blank", "letter"))]
    if not pngs:
        raise SystemExit(f"no PNG images in {args.images}")
    for n in args.clients:
        print(json.dumps(run(n, args.seconds, pngs, args.workers, args.settle)), flush=True)


if __name__ == "__main__":
    main()
