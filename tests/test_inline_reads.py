"""Which reads a server worker does on its event loop (`embed.inline`): small images only, judged from their headers,
and none for a while after a read there was slow. (The server itself: test_h3_server.py.)"""

import io

import numpy as np
from PIL import Image

from conftest import REPO
from mnist_tiny.embed.inline import COOL_DOWN, INLINE_SECONDS, InlineReads

EXAMPLES = REPO / "examples"


def _encoded(side: int, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    noise = np.random.default_rng(side).integers(0, 255, (side, side), dtype=np.uint8)
    Image.fromarray(noise).save(buf, fmt, **options)
    return buf.getvalue()


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_only_one_small_image_whose_header_opens_is_read_on_the_loop():
    inline = InlineReads(clock=Clock())
    small = (EXAMPLES / "tablet-4.png").read_bytes()  # 300×300
    assert inline.allows([("a.png", small)])
    assert inline.allows([("pad.png", _encoded(400))])  # 160,000 pixels: the bound
    assert not inline.allows([("big.png", _encoded(401))])
    assert not inline.allows([("a.png", small), ("b.png", small)])  # several: the reading thread
    assert not inline.allows([("junk.png", b"\x89PNG\r\n\x1a\n" + bytes(50))])  # its decode will say why
    assert not inline.allows([("eps.png", b"%!PS-Adobe-3.0\n")])
    # A progressive JPEG costs a pass over its pixels for each scan: 300×300 with 10 scans is over the bound.
    progressive = _encoded(300, "JPEG", progressive=True)
    assert inline.allows([("b.jpg", _encoded(300, "JPEG"))])
    assert not inline.allows([("p.jpg", progressive)])
    # A photo's real size is in its header, however few bytes it takes (a canvas bomb is not small).
    huge = io.BytesIO()
    Image.new("L", (2000, 2000), 255).save(huge, "PNG")
    assert len(huge.getvalue()) < 20_000 and not inline.allows([("blank.png", huge.getvalue())])


def test_a_slow_read_sends_reads_to_the_thread_for_a_cool_down_that_doubles():
    clock = Clock()
    inline = InlineReads(clock=clock)
    small = [("a.png", (EXAMPLES / "marker-8.png").read_bytes())]
    inline.took(cpu=0.004, wall=0.05)  # quick, though other processes stretched its wall time
    assert inline.allows(small)
    inline.took(cpu=2 * INLINE_SECONDS, wall=2 * INLINE_SECONDS)  # costly
    assert not inline.allows(small)
    clock.now += COOL_DOWN + 0.1
    assert inline.allows(small)
    inline.took(cpu=0.0, wall=5 * INLINE_SECONDS)  # a model that waits without using the CPU
    clock.now += COOL_DOWN + 0.1
    assert not inline.allows(small)  # twice as long this time
    clock.now += COOL_DOWN
    assert inline.allows(small)
    inline.took(cpu=0.003, wall=0.003)  # quick again: the next cool-down is the first one's length
    inline.took(cpu=1.0, wall=1.0)
    clock.now += COOL_DOWN + 0.1
    assert inline.allows(small)


def test_the_warm_up_reads_twice_and_judges_the_model_by_the_second():
    seen = []
    inline = InlineReads(clock=Clock())
    inline.warm_up(seen.append)
    assert len(seen) == 2 and Image.open(io.BytesIO(seen[0])).size == (64, 64)
    assert inline.allows([("a.png", seen[0])])

    import time

    slow = InlineReads(clock=Clock())
    slow.warm_up(lambda data: time.sleep(5 * INLINE_SECONDS))  # a model slow from the start
    assert not slow.allows([("a.png", seen[0])])
