"""A load benchmark for `mnist-tiny serve` (not a test): N concurrent clients posting PNGs to 127.0.0.1.

    python -m mnist_tiny.embed.loadtest --clients 16 --seconds 30

Starts its own server on a free local port, runs for a bounded time, and prints throughput, p50/p99 latency,
errors, the server's peak memory and its CPU time per request as JSON. Clients are threads on keep-alive
connections (http.client), so they share the machine with the server, as a real local client would.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
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


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server and its worker processes so far."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


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
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, i = [], k
            while time.perf_counter() < stop_at:
                body = images[i % len(images)]
                i += 1
                start = time.perf_counter()
                try:
                    conn.request("POST", "/predict", body, {"Content-Type": "image/png"})
                    response = conn.getresponse()
                    ok = response.status == 200 and b'"digit"' in response.read()
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                mine.append(time.perf_counter() - start)
                if not ok:
                    with lock:
                        errors[0] += 1
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        cpu_before = _cpu_seconds(server.pid)
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        server_cpu = _cpu_seconds(server.pid) - cpu_before
        latencies.sort()
        q = statistics.quantiles(latencies, n=100)
        return {"clients": clients, "workers": workers, "seconds": round(elapsed, 1), "requests": len(latencies), "errors": errors[0],
                "per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(1000 * q[49], 1),
                "p99_ms": round(1000 * q[98], 1), "server_peak_mb": round(_peak_rss_mb(server.pid), 1),
                # what a request costs the server, whoever else shares the cores (the clients do): less noisy
                # than requests/s for comparing two versions
                "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(latencies)), 2)}
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
