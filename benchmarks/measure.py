"""How one call is timed and how its peak memory is measured, on CPU and CUDA."""
from __future__ import annotations

import itertools
import time

import torch

CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated over one call, minus the memory allocated before it"
CPU_MEMORY_METHOD = "torch.profiler CPU allocation events: peak bytes live during one call, beyond those before it"


def elapsed_ms(fn, device: str) -> float:
    """Wall time of fn() in milliseconds; on CUDA between events, after the queue drained."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    fn()
    return (time.perf_counter() - begin) * 1e3


def peak_memory_bytes(fn, device: str) -> int | None:
    """Most bytes fn() holds at once beyond what was allocated before it; None if unmeasurable."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    return _cpu_peak_bytes(fn)


def _cpu_peak_bytes(fn) -> int | None:
    # PyTorch keeps no CPU allocator statistics; the profiler records every
    # allocation and free in order, so their running sum gives the peak.
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:  # the raw event list is not public API; without it there is no figure
        events = prof.profiler.kineto_results.events()
    except AttributeError:
        return None
    changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    return max(itertools.accumulate((nbytes for _, nbytes in changes), initial=0))


def memory_method(device: str) -> str:
    return CUDA_MEMORY_METHOD if device == "cuda" else CPU_MEMORY_METHOD
