"""`heap_kept`: freed tensors are reused from the heap, not mapped and page-faulted in again (glibc)."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from phosphene.layers import heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")


def faults_of_reuse() -> int:
    """Minor page faults of allocating and filling a 64 MB tensor five times (each freed before)."""
    torch.ones(16 * 2**20).sum()  # once before counting
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(16 * 2**20).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_kept_heap_reuses_freed_memory():
    pages = 64 * 2**20 // 4096
    assert faults_of_reuse() > 4 * pages  # glibc's default: mapped and faulted in each time
    with heap.heap_kept():
        with heap.heap_kept():  # nested: still kept after the inner one ends
            pass
        assert faults_of_reuse() < pages
    assert heap._depth == 0
    assert faults_of_reuse() > 4 * pages  # the defaults are back
