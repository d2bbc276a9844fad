"""A server process that reads images all day: its malloc and its BLAS, set once (`create_app`).

- malloc (`process_memory`, as training's): every numpy step of a read makes a temporary of a few hundred
  kilobytes, which glibc would hand out as fresh pages each time: a page fault per 4 KB, in some expressions 7× their
  arithmetic.
- BLAS: the reader resamples with small matrix products (`images._area_axis`), which OpenBLAS splits over threads
  that then wait for a core another worker holds. One thread: the workers are the parallelism. (`mnist-tiny` sets
  OPENBLAS_NUM_THREADS=1 before numpy loads; this covers an app built by other means, uvicorn's factory or a test.)

Measured: docs/embed.md.
"""

from __future__ import annotations


def prepare() -> None:
    from threadpoolctl import threadpool_limits

    from mnist_tiny.process_memory import keep_freed_memory

    keep_freed_memory()
    threadpool_limits(limits=1, user_api="blas")  # every BLAS numpy loaded (OpenBLAS, MKL, BLIS), from now on
