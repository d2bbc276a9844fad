"""`keep_freed_memory`: blocks a step frees are reused by the next steps instead of being faulted in again."""

import subprocess
import sys

import pytest

STEPS = """
import resource, sys, torch
from mnist_tiny.process_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
per_step = []
for step in range(8):  # activations of slightly different sizes each step (a last batch, an evaluation batch)
    before = faults()
    xs = [torch.ones((4 << 20) // 4 + step * 4096) for _ in range(8)]
    del xs
    per_step.append(faults() - before)
print(kept, sum(per_step[2:]))
"""


def page_faults_after_warm_up(mode: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    kept, faults = done.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_freed_activations_are_reused_not_faulted_in_again():
    kept, with_keep = page_faults_after_warm_up("keep")
    _, without = page_faults_after_warm_up("plain")
    assert kept == "True"
    # Six steps of 32 MB each: ~50,000 page faults when every step maps fresh memory, a few hundred when reused.
    assert with_keep < without / 10, (with_keep, without)
