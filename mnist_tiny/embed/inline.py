"""Which requests a server worker reads on its event loop instead of handing them to its reading thread.

Handing a read to the thread and the answer back costs a worker about 0.7 ms of CPU a request (two thread
wake-ups, the two threads' GIL, caches gone cold: docs/embed.md), a quarter of what reading a small drawing
costs. A small image's read is short, so it runs on the loop; while it does, that worker's other connections wait
(/health included). Three bounds keep that wait short:

- the image: one upload of at most INLINE_BYTES whose header says at most INLINE_PIXELS pixels × JPEG scans (the
  page's 560×280 pad fits); anything larger, several uploads, or a header that does not open, goes to the thread;
- the read: one that took longer than INLINE_SECONDS on the loop (a costly image, a slow model, a stalled machine)
  sends the worker's reads to the thread for COOL_DOWN seconds, twice as long each time it happens again;
- the count: the requests admitted at a time (`server.Bounded`), so at most that many quick reads are queued.
"""

from __future__ import annotations

import time
from typing import Callable

from mnist_tiny.reader.images import header_cost

INLINE_PIXELS = 160_000
INLINE_BYTES = 1 << 20
# Measured on this project's 2-core VM, CPU time (docs/embed.md): the example drawings read in 1.5–4 ms, the
# example photos of numbers in 15–19 ms, and the costliest images under the bound found (a 400×400 grid of
# strokes, ten rows of printed digits) in 70–77 ms.
INLINE_SECONDS = 0.025
COOL_DOWN = 10.0
MAX_COOL_DOWN = 3600.0


class InlineReads:
    """The policy above for one worker process (`clock`: seconds, monotonic; a test's own)."""

    def __init__(self, pixels: int = INLINE_PIXELS, seconds: float = INLINE_SECONDS, cool_down: float = COOL_DOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pixels, self.seconds, self.clock = pixels, seconds, clock
        self.cool_down, self.until = cool_down, float("-inf")
        self.first_cool_down = cool_down

    def allows(self, uploads: list[tuple[str, bytes]]) -> bool:
        if len(uploads) != 1 or len(uploads[0][1]) > INLINE_BYTES or self.clock() < self.until:
            return False
        cost = header_cost(uploads[0][1])
        return cost is not None and cost <= self.pixels

    def warm_up(self, read: Callable[[bytes], object]) -> None:
        """Read a small drawing twice before serving (`read`: bytes → anything): the first read of a process loads
        the gate's and the line reader's sessions (~40 ms, which would count as a slow read), and the second says
        whether this model is quick enough to read on the loop at all."""
        import io

        from PIL import Image, ImageDraw

        image = Image.new("L", (64, 64), 255)
        ImageDraw.Draw(image).line([(22, 14), (42, 14), (30, 50)], fill=0, width=5)  # a 7
        data = io.BytesIO()
        image.save(data, "PNG")
        read(data.getvalue())
        cpu, wall = time.thread_time(), time.perf_counter()
        read(data.getvalue())
        self.took(time.thread_time() - cpu, time.perf_counter() - wall)

    def took(self, cpu: float, wall: float) -> None:
        """Report what a read on the loop took: its thread's CPU time, which other processes on the same cores do
        not stretch, and its wall time, which shows a model that waits (4 times the bound: a preempted read's
        wall time is stretched by other processes' turns on the cores). A quick read after a cool-down ends the
        doubling."""
        if cpu > self.seconds or wall > 4 * self.seconds:
            self.until = self.clock() + self.cool_down
            self.cool_down = min(2 * self.cool_down, MAX_COOL_DOWN)
        else:
            self.cool_down = self.first_cool_down
