"""Hostile input, third round — the server: one costly request never stalls the rest, every connection and
request is bounded in time and memory, one bad upload costs its own row.

A real uvicorn server on 127.0.0.1 with the project's own protocol (`embed.guard`), run in a thread with small
limits so that the deadlines are seconds, and the installed command for what a user sees (a busy port)."""

import io
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from mnist_tiny.embed.guard import GuardedH11Protocol, GuardedHttpToolsProtocol, guarded_protocol
from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx
from mnist_tiny.embed.server import create_app

EXAMPLES = REPO / "examples"


class Quick:
    header_seconds = 1.0
    max_connections = 40


# Both of uvicorn's parsers: `serve` takes httptools' (installed with [serve]) and h11's where httptools is missing.
PROTOCOLS = {"httptools": type("QuickHttpTools", (Quick, GuardedHttpToolsProtocol), {}),
             "h11": type("QuickH11", (Quick, GuardedH11Protocol), {})}


class SlowReader:
    """The shipped reader, made as slow as a costly image would make it (`delay` seconds a batch, in C-like code
    that releases the GIL, as decoders and onnxruntime do)."""

    def __init__(self, inner):
        self.inner, self.delay, self.temperature = inner, 0.0, inner.temperature
        self.threads: list[str] = []  # where each batch was read

    def __call__(self, x):
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return self.inner(x)


READER = SlowReader(OnnxReader(shipped_onnx("fast-6k")))
LOOP_THREAD = "server-loop"  # the thread the test server's event loop runs in


def test_serve_speaks_http_with_httptools_and_uvloop():
    import uvloop  # noqa: F401 — uvicorn's "auto" loop, which `serve` asks for

    assert guarded_protocol() is GuardedHttpToolsProtocol


@pytest.fixture(scope="module", params=list(PROTOCOLS))
def server(request):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(READER, "fast-6k", in_flight=3, body_seconds=1.5)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", http=PROTOCOLS[request.param],
                            timeout_keep_alive=5, limit_concurrency=1000)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True, name=LOOP_THREAD)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield port
    running.should_exit = True
    thread.join(10)


def _request(port, method, path, body=b"", headers=None, timeout=30.0):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _health_seconds(port) -> float:
    start = time.monotonic()
    status, _ = _request(port, "GET", "/health", timeout=10)
    assert status == 200
    return time.monotonic() - start


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _scan_bomb(scans: int = 5000) -> bytes:
    """A small progressive JPEG whose last scan is repeated thousands of times (each one a pass over the image)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((512, 512), 200, dtype=np.uint8)).save(
        buf, "JPEG", progressive=True)
    data = buf.getvalue()
    last = data.rfind(b"\xff\xda")
    scan = data[last:-2]  # from the last scan's header to the end-of-image marker
    return data[:last] + scan * scans + b"\xff\xd9"


def _huge_canvas_webp(side: int = 6324) -> bytes:
    """An animated WebP of a few hundred bytes whose canvas claims side×side pixels (a 1×1 frame)."""
    one = io.BytesIO()
    Image.new("L", (1, 1), 255).save(one, "WEBP", lossless=True)
    raw = one.getvalue()
    vp8l = raw[12:]  # the frame's own chunk (VP8L …)

    def chunk(tag, payload):
        return tag + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")

    size = (side - 1).to_bytes(3, "little") * 2
    vp8x = chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + size)  # flags: animation
    anim = chunk(b"ANIM", b"\xff\xff\xff\xff" + b"\0\0")
    anmf = chunk(b"ANMF", b"\0" * 6 + b"\0\0\0" * 2 + (100).to_bytes(3, "little") + b"\0" + vp8l)
    body = b"WEBP" + vp8x + anim + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _large_png(name: str, side: int = 640) -> bytes:
    """An example drawing scaled up past what `embed.inline` reads on the event loop (160,000 pixels)."""
    buf = io.BytesIO()
    Image.open(EXAMPLES / name).resize((side, side)).save(buf, "PNG")
    return buf.getvalue()


def _health_while_read(server, body: bytes, requests: int) -> tuple[list[float], list[tuple[int, bytes]]]:
    """Post `body` `requests` times at once and poll /health until every answer is in: the waits, the answers."""
    with ThreadPoolExecutor(requests) as pool:
        costly = [pool.submit(_request, server, "POST", "/predict", body, {"Content-Type": "image/png"})
                  for _ in range(requests)]
        time.sleep(0.3)
        waits = []
        while not all(f.done() for f in costly):
            waits.append(_health_seconds(server))
            time.sleep(0.1)
        return waits, [f.result() for f in costly]


def test_health_answers_within_a_second_while_costly_requests_are_read(server):
    READER.delay = 2.0
    try:
        waits, answers = _health_while_read(server, _large_png("tablet-4.png"), 3)
    finally:
        READER.delay = 0.0
    assert len(waits) >= 5 and max(waits) < 1.0, waits  # 3 requests × 2 s on 2 readers: about 4 s of polling
    assert all(code == 200 and b'"digit":4' in text for code, text in answers), answers


def test_a_small_image_is_read_on_the_loop_until_a_read_there_is_slow(server):
    small = (EXAMPLES / "tablet-4.png").read_bytes()
    READER.threads.clear()
    assert _request(server, "POST", "/predict", _large_png("tablet-4.png"), {"Content-Type": "image/png"})[0] == 200
    assert _request(server, "POST", "/predict", small, {"Content-Type": "image/png"})[0] == 200
    large_at, small_at = READER.threads
    assert small_at == LOOP_THREAD and large_at != LOOP_THREAD  # the hand-off saved where the read is short
    READER.delay = 0.5  # a read on the loop that turns slow (a costly image, a stalled machine) …
    try:
        assert _request(server, "POST", "/predict", small, {"Content-Type": "image/png"})[0] == 200
        READER.delay = 2.0  # … sends the next ones to the reading thread, and the loop keeps answering
        waits, answers = _health_while_read(server, small, 2)
    finally:
        READER.delay = 0.0
    assert READER.threads[2] == LOOP_THREAD and LOOP_THREAD not in READER.threads[3:], READER.threads
    assert len(waits) >= 5 and max(waits) < 1.0, waits
    assert all(code == 200 and b'"digit":4' in text for code, text in answers), answers


def test_a_scan_bomb_and_a_canvas_bomb_are_refused_before_decoding(server):
    start = time.monotonic()
    status, body = _request(server, "POST", "/predict", _scan_bomb(), {"Content-Type": "image/jpeg"})
    assert status == 413 and b"scans" in body, body
    files = [("file", f"{i}.webp", _huge_canvas_webp()) for i in range(64)]
    boundary = "bound"
    payload = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"; filename=\"{f}\"\r\n"
                       f"Content-Type: image/webp\r\n\r\n".encode() + data + b"\r\n" for n, f, data in files)
    payload += f"--{boundary}--\r\n".encode()
    with ThreadPoolExecutor(1) as pool:
        canvas = pool.submit(_request, server, "POST", "/predict", payload,
                             {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        while not canvas.done():
            assert _health_seconds(server) < 1.0
            time.sleep(0.05)
        status, body = canvas.result()
    assert status in (413, 422), body
    assert body.count(b"budget") >= 60, body[:400]  # one canvas at most was decoded; the others were refused
    assert time.monotonic() - start < 30


def test_silent_and_dripping_connections_are_closed_and_new_ones_still_served(server):
    silent = [socket.create_connection(("127.0.0.1", server)) for _ in range(Quick.max_connections + 20)]
    try:
        assert _health_seconds(server) < 1.0  # at the cap, the oldest silent connection gave way
        drip = socket.create_connection(("127.0.0.1", server))
        start = time.monotonic()
        drip.settimeout(10)
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n":
            try:
                drip.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.2)
        if not closed:
            closed = drip.recv(1) == b""
        assert closed and time.monotonic() - start < 5  # its headers had a second, not for ever
    finally:
        for s in silent:
            s.close()


def test_a_dripped_body_times_out_and_requests_in_flight_are_capped(server):
    def slow_upload():
        s = socket.create_connection(("127.0.0.1", server))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\nab")
        return s

    held = [slow_upload() for _ in range(3)]  # the cap of this server: 3 in flight
    try:
        time.sleep(0.3)
        status, body = _request(server, "POST", "/predict", (EXAMPLES / "tablet-4.png").read_bytes(),
                                {"Content-Type": "image/png"})
        assert status == 503 and b"busy" in body
        assert _health_seconds(server) < 1.0
        held[0].settimeout(10)
        answer = held[0].recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0]
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    status, body = _request(server, "POST", "/predict", (EXAMPLES / "tablet-4.png").read_bytes(),
                            {"Content-Type": "IMAGE/PNG"})  # media types are case-insensitive
    assert status == 200 and b'"digit":4' in body


def _answer(s: socket.socket) -> tuple[bytes, bytes]:
    """The status line and body of one HTTP answer read off a raw socket (they may come in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096) or b"\r\n\r\n"
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := s.recv(4096)):
        body += chunk
    return head.split(b"\r\n")[0], body


def test_bodies_over_the_bounds_are_refused_before_they_are_read(server):
    # A declared length over the limit is answered at once: the client has sent its headers and nothing else.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 99999999\r\n\r\n")
        status, body = _answer(s)
        assert b" 413 " in status and b"99,999,999 bytes" in body, (status, body)
    # A multipart body without a length (chunked) would be spooled whole before its parts could be counted.
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        status, body = _answer(s)
        assert b" 411 " in status and b"Content-Length" in body, (status, body)
    status, body = _request(server, "GET", "/health")
    assert status == 200 and b'"ok"' in body


def test_one_corrupt_upload_costs_its_own_row(server):
    good = (EXAMPLES / "marker-8.png").read_bytes()
    truncated = good[: len(good) // 2]
    blp = b"BLP2" + bytes(200)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) print\n"
    avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + bytes(100)
    files = [("a.png", good), ("b.png", truncated), ("c.blp", blp), ("d.png", eps), ("e.avif", avif),
             ("f.png", good)]
    boundary = "b0undary"
    payload = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{f}\"\r\n"
                       f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for f, data in files)
    payload += f"--{boundary}--\r\n".encode()
    import json

    status, body = _request(server, "POST", "/predict", payload,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, body
    rows = json.loads(body)
    assert [r.get("digit") for r in rows] == [8, None, None, None, None, 8]
    assert all("error" in r for r in rows[1:5])
    assert "format the reader opens" in rows[3]["error"]  # PostScript never reaches Ghostscript


def test_head_is_answered(server):
    assert _request(server, "HEAD", "/")[0] == 200
    assert _request(server, "HEAD", "/health")[0] == 200


def test_a_busy_port_is_one_line_and_an_open_host_is_warned_about():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(["mnist-tiny", "serve", "--host", "0.0.0.0", "--port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("warning:") and "no authentication" in lines[0]
    assert lines[1].startswith("error:") and f"port {port}" in lines[1] and "in use" in lines[1]
    assert "serving" not in result.stdout and "Errno" not in result.stderr
