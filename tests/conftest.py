"""Shared fixtures; the per-sample oracle lives with the benchmarks, importable from here."""
import os
import sys

import pytest
import torch

import see_cuda

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

requires_cpu_kernels = pytest.mark.skipif(
    not see_cuda.backends()["cpu"], reason="see_cuda._C is not built: run pip install --no-build-isolation -e ."
)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests pin torch to its default thread count; determinism tests change it themselves."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
