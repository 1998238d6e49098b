"""`heap_kept`: freed tensors are reused from the heap, not mapped and page-faulted in again (glibc)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# Run in a fresh interpreter: the allocator's state is process-wide, and what earlier tests in this
# process allocated and freed decides whether glibc's default path maps a 64 MB block afresh.
MEASURE = """
import json, resource, torch
from phosphene.layers import heap

def faults_of_reuse():
    torch.ones(16 * 2**20).sum()  # once before counting
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(16 * 2**20).sum()  # 64 MB, freed before the next
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_reuse()
with heap.heap_kept():
    with heap.heap_kept():  # nested: still kept after the inner one ends
        pass
    kept = faults_of_reuse()
print(json.dumps({"default": default, "kept": kept, "after": faults_of_reuse(), "depth": heap._depth}))
"""


def test_kept_heap_reuses_freed_memory():
    out = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=120,
                         check=True)
    faults = json.loads(out.stdout.strip().splitlines()[-1])
    pages = 64 * 2**20 // 4096
    assert faults["default"] > 4 * pages  # glibc's default: mapped and faulted in each time
    assert faults["kept"] < pages  # kept: the freed block is reused, no new faults
    assert faults["depth"] == 0
    assert faults["after"] > 4 * pages  # the defaults are back
