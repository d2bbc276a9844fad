"""`mnist-tiny serve`: a draw-a-digit page and a JSON API, on FastAPI + uvicorn, reading with onnxruntime.

    GET  /          the page: draw with mouse, pen or finger, or upload a photo; top-k bars while drawing
    POST /predict   multipart field `file` (one or several) or a raw image body → the fields of `predict --json`
                    (?top_k=3, ?expect=auto|one|many, ?input=true for the 28×28 crops the model saw)
    GET  /models    the models this server can read with     GET /health    liveness
    GET  /docs      OpenAPI (FastAPI's own)

Every asset is served by the package (no CDN). Bad requests are 4xx with a JSON `detail`; a request body is
bounded (413 beyond `max_bytes` or `max_files`), an unreadable image is a 415 and an image without a digit a 422
with the reason, after which the server goes on.
"""

import io
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mnist_tiny import __version__
from mnist_tiny.errors import UserError
from mnist_tiny.reader.images import decode_image
from mnist_tiny.reader.predict import locate_into, read_digits

MAX_BYTES = 10 << 20  # per request
MAX_FILES = 64
IMAGE_TYPES = ("image/", "application/octet-stream")


def create_app(reader, name: str, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> FastAPI:
    """The ASGI app reading digits and numbers with `reader` (N×1×28×28 float32 → N×10 logits, e.g.
    `OnnxReader`; its `temperature` calibrates the confidences)."""
    app = FastAPI(title="mnist-tiny", version=__version__,
                  description="Read handwritten digits: POST an image to /predict, or draw one at /.")
    page = (resources.files("mnist_tiny.embed") / "static" / "index.html").read_text(encoding="utf-8")

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return JSONResponse({"detail": f"request body of {int(declared):,} bytes is over the limit of "
                                           f"{max_bytes:,}"}, status_code=413)
        if declared is None and request.headers.get("content-type", "").startswith("multipart/"):
            # A multipart body is parsed (and spooled) whole before its parts can be counted: its length first.
            return JSONResponse({"detail": "a multipart upload needs a Content-Length header"}, status_code=411)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": __version__}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"model": name, "input": "N×1×28×28 float32 in [0, 1] (images are preprocessed as MNIST was made)"}

    @app.post("/predict")
    async def predict(request: Request, top_k: int = 3, input: bool = False,
                      expect: str = "auto") -> list[dict[str, Any]]:
        if not 1 <= top_k <= 10:
            raise HTTPException(422, "top_k: between 1 and 10")
        if expect not in ("auto", "one", "many"):
            raise HTTPException(422, "expect: auto, one or many")
        uploads = await _uploads(request, max_bytes, max_files)
        results: list[dict[str, Any]] = []
        found: list = []
        for label, data in uploads:
            result: dict[str, Any] = {"file": label}
            try:
                grey, size = decode_image(io.BytesIO(data), label, with_size=True)
                locate_into(result, grey, size, found, len(results), expect, keep_inputs=input)
            except UserError as e:
                result["error"] = str(e).removeprefix(f"{label}: ")
            results.append(result)
        read_digits(reader, found, results, top_k, keep_inputs=input)
        for r in results:
            r.pop("ink", None)
            r.pop("ink_boxes", None)
            if "inputs" in r:
                r["inputs"] = [[[round(float(v), 3) for v in row] for row in crop] for crop in r["inputs"]]
                r["input"] = r["inputs"][0]
        if all("error" in r for r in results):
            errors = [r["error"] for r in results]
            status = (413 if any("too large" in e for e in errors) else
                      415 if any(e.startswith(("not an image", "cannot decode")) for e in errors) else 422)
            return JSONResponse({"detail": results[0]["error"], "results": results}, status_code=status)
        if not any(r.get("text") for r in results):
            reason = next(r["reason"] for r in results if "reason" in r)
            return JSONResponse({"detail": reason, "results": results}, status_code=422)
        return results

    return app


async def _uploads(request: Request, max_bytes: int, max_files: int) -> list[tuple[str, bytes]]:
    """The images of a request: multipart `file` fields, or the raw body; sizes bounded as they are read."""
    kind = request.headers.get("content-type", "")
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
    them from `source`, an .onnx file."""
    import os

    import uvicorn

    if workers == 1 or source is None:
        uvicorn.run(create_app(reader, name), host=host, port=port, log_level="warning")
        return
    os.environ[SOURCE_ENV] = source
    uvicorn.run("mnist_tiny.embed.server:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning")


SOURCE_ENV = "MNIST_TINY_SERVE_ONNX"


def app_from_environment() -> FastAPI:
    """For uvicorn's worker processes: the app over the ONNX file `serve` named in MNIST_TINY_SERVE_ONNX."""
    import os

    from mnist_tiny.embed.runtime import OnnxReader

    reader = OnnxReader(os.environ[SOURCE_ENV], threads=1)
    return create_app(reader, reader.name)
