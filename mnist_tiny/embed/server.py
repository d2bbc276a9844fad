"""`mnist-tiny serve`: a draw-a-digit page and a JSON API, on FastAPI + uvicorn, reading with onnxruntime.

    GET  /          the page: draw with mouse, pen or finger, or upload a photo; top-k bars while drawing
    POST /predict   multipart field `file` (one or several) or a raw image body → the fields of `predict --json`
                    (?top_k=3, ?expect=auto|one|many, ?input=true for the 28×28 crops the model saw)
    GET  /models    the models this server can read with     GET /health    liveness
    GET  /docs      OpenAPI, in Swagger UI (and /redoc), their files served from the package (fastapi-offline)

Every asset is served by the package (no CDN). Bad requests are 4xx with a JSON `detail`; a request body is
bounded (413 beyond `max_bytes` or `max_files`), an unreadable image is a 415 and an image without a digit a 422
with the reason, after which the server goes on.
"""

import asyncio
import io
import json
import sys
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mnist_tiny import __version__
from mnist_tiny.embed.inline import InlineReads
from mnist_tiny.errors import UserError
from mnist_tiny.reader.images import MAX_PIXELS, PixelBudget, decode_image
from mnist_tiny.reader.predict import locate_into, read_digits

MAX_BYTES = 10 << 20  # per request
MAX_FILES = 64
IMAGE_TYPES = ("image/", "application/octet-stream")
# Reading is CPU work: beyond a small image (embed.inline) it runs off the event loop, on at most READERS threads
# at a time (decoders and onnxruntime release the GIL; one per process with several workers,
# `app_from_environment`), so /health and the page answer while it goes on. At most IN_FLIGHT requests are
# admitted at a time, bodies included (memory: IN_FLIGHT × MAX_BYTES); the next is a 503 with Retry-After.
READERS = 2
IN_FLIGHT = 16
# What one request may decode, in pixels × JPEG scans (reader.images.PixelBudget): one largest image's worth.
REQUEST_PIXELS = MAX_PIXELS
BODY_SECONDS = 30.0  # to send the whole body (a client that drips it is cut off)


def create_app(reader, name: str, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
               readers: int = READERS, in_flight: int = IN_FLIGHT, request_pixels: int = REQUEST_PIXELS,
               body_seconds: float = BODY_SECONDS) -> FastAPI:
    """The ASGI app reading digits and numbers with `reader` (N×1×28×28 float32 → N×10 logits, e.g.
    `OnnxReader`; its `temperature` calibrates the confidences). A small image is read on the event loop
    (`embed.inline`), anything else in a reading thread."""
    from fastapi_offline import FastAPIOffline

    from mnist_tiny.embed import worker

    worker.prepare()  # malloc that keeps freed memory, BLAS on one thread

    # /docs and /redoc with Swagger UI's and ReDoc's files served from the package (FastAPI's own load them
    # from a CDN: blank without the internet, and third-party code on this origin).
    app = FastAPIOffline(title="mnist-tiny", version=__version__, static_url="/static-docs",
                         description="Read handwritten digits: POST an image to /predict, or draw one at /.")
    page = (resources.files("mnist_tiny.embed") / "static" / "index.html").read_text(encoding="utf-8")
    limiter = anyio.CapacityLimiter(readers)
    inline = InlineReads()
    inline.warm_up(lambda data: answer(reader, [("warm-up", data)], 1, "auto", False, PixelBudget(request_pixels)))

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": __version__}

    @app.get("/models")
    async def models() -> dict[str, Any]:
        return {"model": name, "input": "N×1×28×28 float32 in [0, 1] (images are preprocessed as MNIST was made)"}

    async def reply(request: Request, top_k: int, keep_inputs: bool, expect: str) -> Response:
        """POST /predict, whichever way it came in (FastAPI's route, or `Direct`)."""
        if not 1 <= top_k <= 10:
            raise HTTPException(422, "top_k: between 1 and 10")
        if expect not in ("auto", "one", "many"):
            raise HTTPException(422, "expect: auto, one or many")
        try:
            uploads = await asyncio.wait_for(_uploads(request, max_bytes, max_files), body_seconds)
        except asyncio.TimeoutError:
            raise HTTPException(408, f"the request body was not sent within {body_seconds:.0f} s") from None
        work = lambda: answer(reader, uploads, top_k, expect, keep_inputs, PixelBudget(request_pixels))  # noqa: E731
        if inline.allows(uploads):  # a small image: on the loop, no hand-off (embed.inline)
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                results, encoded = work()
            finally:
                inline.took(time.thread_time() - cpu, time.perf_counter() - wall)
        else:
            results, encoded = await anyio.to_thread.run_sync(work, limiter=limiter)
        if encoded is not None:
            return Response(encoded, media_type="application/json")
        if all("error" in r for r in results):
            errors = [r["error"] for r in results]
            status = (413 if any("too large" in e or e.startswith("refused") for e in errors) else
                      415 if any(e.startswith(("not an image", "cannot decode")) for e in errors) else 422)
            return JSONResponse({"detail": results[0]["error"], "results": results}, status_code=status)
        reason = next((r["reason"] for r in results if "reason" in r), results[0].get("error", "no digit"))
        return JSONResponse({"detail": reason, "results": results}, status_code=422)

    @app.post("/predict")
    async def predict(request: Request, top_k: int = 3, input: bool = False,
                      expect: str = "auto") -> list[dict[str, Any]]:
        return await reply(request, top_k, input, expect)  # the annotation stays for /docs' schema

    # Added first, so it runs inside Bounded (the admission count and size refusals hold for it too).
    app.add_middleware(Direct, reply=reply)
    app.add_middleware(Bounded, max_bytes=max_bytes, in_flight=in_flight)
    return app


class Direct:
    """POST /predict with an image as the body, answered straight from ASGI. With a reader that answers at once,
    FastAPI's route cost a worker 0.45–0.52 ms of CPU a request, this path 0.29–0.30 (a bare ASGI function 0.10;
    docs/embed.md): its routing, parameter validation and exception middleware were an eighth of a small
    drawing's whole read. The same `reply` answers either way; a multipart upload, or a query whose values FastAPI
    would parse otherwise or refuse, goes on to FastAPI, which says what is wrong in its own words."""

    def __init__(self, app, reply) -> None:
        self.app, self.reply = app, reply

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict":
            query = _plain_query(scope["query_string"])
            kind = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if query is not None and not kind.lower().startswith(b"multipart/"):
                try:
                    response = await self.reply(Request(scope, receive), *query)
                except HTTPException as e:
                    response = JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=e.headers)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


TRUE, FALSE = {"1", "on", "t", "true", "y", "yes"}, {"0", "off", "f", "false", "n", "no"}  # as pydantic reads a bool
BOOLS = TRUE | FALSE


def _plain_query(raw: bytes) -> tuple[int, bool, str] | None:
    """/predict's top_k, input and expect from a query string, as FastAPI would take them (the last of a repeated
    name; other names ignored); None where FastAPI would refuse a value or read it in a way this does not."""
    top_k, keep_inputs, expect = 3, False, "auto"
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else ():
        if key == "top_k":
            if not (value.isascii() and value.isdigit() and len(value) < 4):
                return None
            top_k = int(value)
        elif key == "input":
            if value.lower() not in BOOLS:
                return None
            keep_inputs = value.lower() in TRUE
        elif key == "expect":
            expect = value
    return top_k, keep_inputs, expect


class Bounded:
    """Refuses what is over the bounds before a body is read: a declared length over `max_bytes` (413), a multipart
    upload without a length (411), a POST beyond `in_flight` admitted at a time (503, Retry-After). Plain ASGI, not
    `@app.middleware`: Starlette's BaseHTTPMiddleware adds a task and a stream to every request."""

    def __init__(self, app, max_bytes: int, in_flight: int) -> None:
        self.app, self.max_bytes, self.in_flight, self.now = app, max_bytes, in_flight, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # names arrive lower-cased
        declared = headers.get(b"content-length")
        refusal = None
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            refusal = (f"request body of {int(declared):,} bytes is over the limit of {self.max_bytes:,}", 413, None)
        elif declared is None and headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            # A multipart body is parsed (and spooled) whole before its parts can be counted: its length first.
            refusal = ("a multipart upload needs a Content-Length header", 411, None)
        elif scope["method"] == "POST" and self.now >= self.in_flight:
            refusal = (f"busy: {self.in_flight} requests are being read; try again shortly", 503, {"Retry-After": "1"})
        if refusal is not None:
            detail, status, extra = refusal
            return await JSONResponse({"detail": detail}, status_code=status, headers=extra)(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        self.now += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


def answer(reader, uploads: list[tuple[str, bytes]], top_k: int, expect: str, keep_inputs: bool,
           budget: PixelBudget) -> tuple[list[dict[str, Any]], bytes | None]:
    """`read_uploads`, and its JSON when something was read (the 200 answer; None otherwise, for the endpoint's
    4xx with a reason), both in the reading thread: encoded here, off the event loop, where FastAPI would validate
    and encode it while the loop holds the GIL that other requests' bytes wait for."""
    results = read_uploads(reader, uploads, top_k, expect, keep_inputs, budget)
    if not any(r.get("text") for r in results):
        return results, None
    return results, json.dumps(results, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def read_uploads(reader, uploads: list[tuple[str, bytes]], top_k: int, expect: str, keep_inputs: bool,
                 budget: PixelBudget) -> list[dict[str, Any]]:
    """One request's images, read (in a worker thread): each file that cannot be read is its own row with the
    reason, whatever its decoder raised; the others are read."""
    results: list[dict[str, Any]] = []
    found: list = []
    for label, data in uploads:
        result: dict[str, Any] = {"file": label}
        try:
            grey, size = decode_image(io.BytesIO(data), label, with_size=True, budget=budget)
            locate_into(result, grey, size, found, len(results), expect, keep_inputs=keep_inputs)
        except UserError as e:
            result["error"] = str(e).removeprefix(f"{label}: ")
        except Exception as e:  # noqa: BLE001 — one image's failure is its own row, never the request's 500
            result["error"] = f"cannot read this image ({type(e).__name__})"
        results.append(result)
    try:
        read_digits(reader, found, results, top_k, keep_inputs=keep_inputs)
    except UserError as e:  # the model itself failed (an ONNX file that answers NaN or runs too long)
        for index, _, _ in found:
            results[index] = {"file": results[index]["file"], "error": str(e)}
    for r in results:
        r.pop("ink", None)
        r.pop("ink_boxes", None)
        if "inputs" in r:
            r["inputs"] = [[[round(float(v), 3) for v in row] for row in crop] for crop in r["inputs"]]
            r["input"] = r["inputs"][0]
    return results


async def _uploads(request: Request, max_bytes: int, max_files: int) -> list[tuple[str, bytes]]:
    """The images of a request: multipart `file` fields, or the raw body; sizes bounded as they are read."""
    kind = request.headers.get("content-type", "").lower()  # media types are case-insensitive (RFC 9110)
    if kind.startswith("multipart/form-data"):
        form = await request.form(max_files=max_files + 1, max_fields=max_files + 1)
        files = [f for key, f in form.multi_items() if key == "file" and hasattr(f, "read")]
        if not files:
            raise HTTPException(422, "multipart body without a `file` field")
        if len(files) > max_files:
            raise HTTPException(413, f"{len(files)} files in one request; at most {max_files}")
        out, total = [], 0
        for f in files:
            data = await f.read(max_bytes + 1)
            total += len(data)
            if total > max_bytes:
                raise HTTPException(413, f"uploads over the limit of {max_bytes:,} bytes")
            out.append((f.filename or "upload", data))
        return out
    if kind and not kind.startswith(IMAGE_TYPES):
        raise HTTPException(415, f"content type {kind!r}: send an image (image/png, image/jpeg, …) or multipart")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"request body over the limit of {max_bytes:,} bytes")
    if not body:
        raise HTTPException(422, "empty request body: send an image")
    return [("body", bytes(body))]


def serve(reader, name: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          source: str | None = None) -> None:
    """Run the server. With several `workers` (processes, each its own reader) uvicorn builds the app in each of
    them from `source`, an .onnx file. A port that cannot be had is one UserError, before anything is served."""
    import os

    import uvicorn

    from mnist_tiny.embed.guard import MAX_CONNECTIONS, guarded_protocol

    check_port(host, port)
    # uvloop where it is installed (uvicorn's "auto"), as httptools: ~0.1 ms a request less than asyncio's loop.
    limits = dict(host=host, port=port, log_level="warning", http=guarded_protocol(), loop="auto",
                  timeout_keep_alive=5, limit_concurrency=MAX_CONNECTIONS, backlog=256)
    if workers == 1 or source is None:
        uvicorn.run(create_app(reader, name), **limits)
        return
    os.environ[SOURCE_ENV] = source
    uvicorn.run("mnist_tiny.embed.server:app_from_environment", factory=True, workers=workers, **limits)


def check_port(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will, so that a busy port or an unknown host is one line, not a log."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise UserError(f"--host {host}: not an address this machine can listen on ({e.strerror or e})", 2) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            reason = "is in use (another server is running there?); pick another with --port" \
                if e.errno == 98 else (e.strerror or str(e))
            raise UserError(f"port {port} on {host} {reason}", 1) from None


SOURCE_ENV = "MNIST_TINY_SERVE_ONNX"


def app_from_environment() -> FastAPI:
    """For uvicorn's worker processes: the app over the ONNX file `serve` named in MNIST_TINY_SERVE_ONNX."""
    import os

    from mnist_tiny.embed.runtime import OnnxReader

    # One reading thread per worker: the workers are the parallelism, and a second thread in the same process only
    # waits for its GIL. The event loop takes the GIL from the reading thread after 1 ms instead of Python's 5, so a
    # request's bytes are not kept waiting behind another's read (measured: docs/embed.md).
    sys.setswitchinterval(0.001)
    reader = OnnxReader(os.environ[SOURCE_ENV], threads=1)
    return create_app(reader, reader.name, readers=1)
