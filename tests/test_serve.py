"""`mnist-tiny serve`: the JSON API through its test client, and the page in a real headless Chromium."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import REPO
from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx
from mnist_tiny.embed.server import create_app

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def client():
    reader = OnnxReader(shipped_onnx("fast-11k"))
    return TestClient(create_app(reader, "fast-11k", max_bytes=2 << 20, max_files=8))


def test_predict_answers_as_the_command_does(client):
    raw = client.post("/predict", content=(EXAMPLES / "pen-on-paper-3.jpg").read_bytes(),
                      headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 200 and raw.json()[0]["digit"] == 3
    files = [("file", (p.name, p.read_bytes(), "image/png")) for p in
             (EXAMPLES / "chalk-1.png", EXAMPLES / "marker-8.png", EXAMPLES / "tablet-4.png")]
    many = client.post("/predict?top_k=2", files=files)
    assert many.status_code == 200
    assert [(r["file"], r["digit"], len(r["top"])) for r in many.json()] == [
        ("chalk-1.png", 1, 2), ("marker-8.png", 8, 2), ("tablet-4.png", 4, 2)]
    from mnist_tiny.reader.predict import predict_files

    command = predict_files(OnnxReader(shipped_onnx("fast-11k")), [EXAMPLES / "chalk-1.png", EXAMPLES / "marker-8.png",
                                                                   EXAMPLES / "tablet-4.png"], top_k=2)
    assert [(r["digit"], r["top"]) for r in command] == [(r["digit"], r["top"]) for r in many.json()]
    seen = client.post("/predict?input=true", files=[files[2]]).json()[0]["input"]
    assert len(seen) == 28 and len(seen[0]) == 28
    assert client.get("/health").json()["status"] == "ok" and client.get("/models").json()["model"] == "fast-11k"
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "http" not in page.text.split("<script>")[1]


def test_api_docs_are_served_without_the_internet(client):
    """/docs and /redoc load Swagger UI and ReDoc from this server: no URL on the page names another host."""
    import re

    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        urls = re.findall(r"(?:src|href)=[\"']([^\"']+)", page.text) + re.findall(r"url: *[\"']([^\"']+)", page.text)
        assert urls and all(u.startswith("/") for u in urls), (path, urls)
        assert "cdn" not in page.text and "https://" not in page.text.replace("https://fastapi", "")
        for asset in (u for u in urls if u.endswith((".js", ".css"))):
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 50_000, asset  # the real bundle


def test_a_30_mb_upload_is_refused_at_the_default_limit():
    app = create_app(OnnxReader(shipped_onnx("fast-11k")), "fast-11k")
    with TestClient(app) as plain:
        big = plain.post("/predict", content=bytes(30 << 20), headers={"Content-Type": "image/png"})
        assert big.status_code == 413 and "10,485,760" in big.json()["detail"]
        assert plain.get("/health").status_code == 200


def test_bad_requests_are_4xx_with_a_reason_and_the_server_stays_up(client):
    text = client.post("/predict", content=b"hello", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and "send an image" in text.json()["detail"]
    junk = client.post("/predict", content=b"hello", headers={"Content-Type": "image/png"})
    assert junk.status_code == 415 and "not an image" in junk.json()["detail"]
    big = client.post("/predict", content=bytes(3 << 20), headers={"Content-Type": "image/png"})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    blank = client.post("/predict", content=(EXAMPLES / "blank-page.png").read_bytes(),
                        headers={"Content-Type": "image/png"})
    assert blank.status_code == 422 and "no digit" in blank.json()["detail"]
    crowd = client.post("/predict", files=[("file", (f"{i}.png", b"x", "image/png")) for i in range(9)])
    assert crowd.status_code == 413
    mixed = client.post("/predict", files=[("file", ("a.png", b"junk", "image/png")),
                                           ("file", ("b.png", (EXAMPLES / "marker-8.png").read_bytes(), "image/png"))])
    assert mixed.status_code == 200 and "error" in mixed.json()[0] and mixed.json()[1]["digit"] == 8
    assert client.post("/predict?top_k=11", content=b"x", headers={"Content-Type": "image/png"}).status_code == 422
    assert client.get("/health").json()["status"] == "ok"


def test_an_image_body_and_a_multipart_upload_are_answered_alike(client):
    """A raw image body is answered without FastAPI's routing (`server.Direct`), a multipart upload through it:
    the same reading, the same statuses and reasons; a query FastAPI would refuse gets FastAPI's own answer."""
    def both(query, name, data):
        raw = client.post(f"/predict{query}", content=data, headers={"Content-Type": "image/png"})
        form = client.post(f"/predict{query}", files=[("file", (name, data, "image/png"))])
        return raw, form

    for query in ("", "?top_k=1", "?top_k=10&expect=one", "?input=YES&top_k=2", "?input=off&expect=many",
                  "?top_k=3&top_k=5", "?other=1", "?top_k=%203"):
        for name in ("tablet-4.png", "blank-page.png", "letter-A.png"):
            raw, form = both(query, name, (EXAMPLES / name).read_bytes())
            assert raw.status_code == form.status_code, (query, name)
            a, b = raw.json(), form.json()
            rows_a, rows_b = (a, b) if isinstance(a, list) else (a["results"], b["results"])
            assert [r.pop("file") for r in rows_a] == ["body"] and [r.pop("file") for r in rows_b] == [name]
            assert a == b, (query, name)
    assert len(both("?top_k=3&top_k=5", "t.png", (EXAMPLES / "tablet-4.png").read_bytes())[0].json()[0]["top"]) == 5
    assert "input" in both("?input=YES", "t.png", (EXAMPLES / "tablet-4.png").read_bytes())[0].json()[0]
    for query, says in (("?top_k=0", "top_k: between 1 and 10"), ("?expect=two", "expect: auto, one or many")):
        raw, form = both(query, "t.png", (EXAMPLES / "tablet-4.png").read_bytes())
        assert raw.status_code == form.status_code == 422 and raw.json() == form.json() == {"detail": says}
    for query in ("?top_k=abc", "?input=maybe", "?top_k=99999"):  # FastAPI's validation answers
        raw, form = both(query, "t.png", (EXAMPLES / "tablet-4.png").read_bytes())
        assert raw.status_code == form.status_code == 422 and raw.json() == form.json(), query


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sixteen_clients(port: int, each: int = 8) -> None:
    """A short load on the real server: 16 concurrent clients, every answer a 200 with a digit."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    body = (EXAMPLES / "tablet-4.png").read_bytes()

    def client(_):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        codes = []
        for _ in range(each):
            conn.request("POST", "/predict", body, {"Content-Type": "image/png"})
            response = conn.getresponse()
            codes.append((response.status, b'"digit":4' in response.read()))
        return codes

    with ThreadPoolExecutor(16) as pool:
        answers = [c for codes in pool.map(client, range(16)) for c in codes]
    assert answers == [(200, True)] * (16 * each)


def test_the_page_reads_a_digit_drawn_with_the_mouse_in_chromium(tmp_path):
    """A real server process and a real headless Chromium: draw a 7 with mouse events, read the answer; then a
    number."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        missing = "the browser test needs Debian's chromium and chromium-driver (README's set-up installs them)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # in CI a missing browser is a failure, never a skip
        pytest.skip(missing + "; skipped outside CI")
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mnist-tiny"), "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(flag)
    options.binary_location = browser
    page = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.1)
        page = webdriver.Chrome(service=Service(driver), options=options)
        page.get(f"http://127.0.0.1:{port}/")
        pad = page.find_element(By.ID, "pad")
        centre = (pad.size["width"] / 2, pad.size["height"] / 2)

        def draw(*lines):  # pen strokes in the pad's pixels, each a polyline
            for line in lines:
                (x, y), rest = line[0], line[1:]
                strokes = ActionChains(page).move_to_element_with_offset(pad, x - centre[0], y - centre[1])
                strokes.click_and_hold()
                for x1, y1 in rest:
                    for _ in range(8):
                        strokes.move_by_offset((x1 - x) / 8, (y1 - y) / 8)
                    x, y = x1, y1
                strokes.release().perform()

        def read() -> str:
            WebDriverWait(page, 30).until(lambda p: p.find_element(By.ID, "digit").text.strip() != "")
            return page.find_element(By.ID, "digit").text.strip()

        draw([(90, 60), (200, 60), (130, 240)])
        assert read() == "7"
        assert "confident" in page.find_element(By.ID, "confidence").text
        page.find_element(By.ID, "clear").click()
        assert page.find_element(By.ID, "digit").text.strip() == ""
        # A number: a 4 (two strokes), then a 2 beside it.
        draw([(150, 50), (90, 170), (210, 170)], [(180, 60), (180, 240)], [(280, 90), (330, 50), (390, 80),
                                                                             (300, 230), (410, 230)])
        assert read() == "42"
        if os.environ.get("MNIST_TINY_SCREENSHOT"):  # docs/serve.png: MNIST_TINY_SCREENSHOT=docs/serve.png
            time.sleep(1)  # the bars' last update
            page.save_screenshot(os.environ["MNIST_TINY_SCREENSHOT"])
        page.find_element(By.ID, "clear").click()
        # A photo of two rows, uploaded: both rows read, every digit's 28×28 on its row, the photo on the pad.
        upload = page.find_element(By.ID, "upload")
        page.execute_script("arguments[0].hidden = false", upload)
        upload.send_keys(str(Path(__file__).resolve().parents[1] / "examples" / "note-two-rows.jpg"))
        WebDriverWait(page, 30).until(lambda p: "\n" in p.find_element(By.ID, "digit").text)
        assert page.find_element(By.ID, "digit").text.strip() == "314\n1592"
        seen = page.find_element(By.ID, "seen")
        assert (seen.get_attribute("width"), seen.get_attribute("height")) == ("112", "56")  # 4 across, 2 rows
        inked = page.execute_script("""const c = document.getElementById('pad').getContext('2d');
            const d = c.getImageData(0, 0, c.canvas.width, c.canvas.height).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) n += d[i] < 200; return n;""")
        assert inked > 1000  # the photo is drawn on the pad
        page.find_element(By.ID, "clear").click()
        _sixteen_clients(port)
    finally:
        if page is not None:
            page.quit()
        server.terminate()
        server.wait(timeout=30)


def test_two_worker_processes_serve_and_stop_together():
    """`serve --workers 2`: uvicorn's worker processes, each with its own reader, answer under a short load; a
    stop signal to the command takes its workers with it."""
    import http.client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "mnist-tiny"), "serve", "--port", str(port),
                               "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        time.sleep(3)  # both workers have loaded the app
        workers = [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]
        assert len(workers) >= 2, workers
        _sixteen_clients(port)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "2 workers" in out, out

    def running(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False

    deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves a moment after its parent
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(running, workers)), f"processes left running: {[p for p in workers if running(p)]}"


def test_the_load_benchmark_reports_what_a_request_costs_the_server():
    """`python -m mnist_tiny.embed.loadtest` (docs/embed.md's figures): its own server, real requests, and the
    fields the docs quote, the server's CPU time per request among them."""
    from mnist_tiny.embed import loadtest

    report = loadtest.run(2, 2.0, [(EXAMPLES / "marker-8.png").read_bytes()], workers=1, settle=0)
    assert report["requests"] > 0 and report["errors"] == 0
    assert report["p50_ms"] > 0 and report["server_peak_mb"] > 10
    assert 0 < report["server_cpu_ms_per_request"] < 1000 and 0 < report["client_cpu_ms_per_request"] < 1000
    # An answer without a digit (a blank page: 422) is an error, not a request served.
    blank = loadtest.run(1, 1.0, [(EXAMPLES / "blank-page.png").read_bytes()], workers=1, settle=0)
    assert blank["requests"] > 0 and blank["errors"] == blank["requests"]
