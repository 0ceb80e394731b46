"""The machine a measurement runs on: device, cores, synchronisation, fp32 matmul peak, allocator.

peak_gflops(pick_device(), n=4096)     # best n x n torch.mm rate, GFLOP/s
reuse_freed_memory()                   # glibc: keep freed buffers for the next training step
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or torch.get_num_threads()


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_MAX = 32 << 20  # the largest mmap threshold glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit)
_TRIM = 1 << 30  # keep up to 1 GiB of freed heap instead of returning it to the kernel


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks (up to 32 MiB each) for reuse; True if it applied.

    A training step frees and re-allocates the same buffers every step: the gradients (the
    Trainer zeroes them to None: 344 MB for AST-base) and the activations. By default glibc
    serves the larger ones from fresh mmap'd pages and unmaps them on free, so every step
    page-faults and zeroes them again: a quarter of an AST-base mae step on 2 cores
    (``docs/speed.md``). With the blocks kept in the heap, resident memory stays at the step's
    peak, which the step reaches anyway. Not glibc (macOS, musl): nothing changes.
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))


def pick_device(device: str | None = None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels are asynchronous: time only finished work
        torch.cuda.synchronize(device)


def autocast(device: torch.device) -> Any:
    """bf16 (or fp16) autocast on CUDA, as the Trainer's ``--precision auto``; fp32 on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()  # CPU: fp32, the precision the targets are stated in
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def peak_gflops(device: torch.device, n: int = 4096, repeats: int = 5) -> float:
    """Best fp32 ``torch.mm`` rate of an n x n product (TF32 off: it is not fp32 work)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    best = math.inf
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            sync(device)
            if i:  # the first product warms the allocator and the BLAS thread pool
                best = min(best, time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return 2 * n**3 / best / 1e9
