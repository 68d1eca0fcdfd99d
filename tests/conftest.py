"""Shared marks and fixtures: which kernels this install has, and the devices each op family runs on."""
import pytest
import torch

import see_cuda

HAVE_CPU_KERNELS = see_cuda.backends()["cpu"]
HAVE_CUDA_KERNELS = torch.cuda.is_available() and see_cuda.backends()["cuda"]

requires_cpu_kernels = pytest.mark.skipif(
    not HAVE_CPU_KERNELS, reason="see_cuda._C is not built: run pip install --no-build-isolation -e ."
)
requires_cuda_kernels = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAVE_CUDA_KERNELS, reason="needs a CUDA device and see_cuda built with its CUDA kernels"),
]
# The devices whose kernels a test runs on: a test taking `device` runs once per entry.
DEVICES = [pytest.param("cpu", marks=requires_cpu_kernels), pytest.param("cuda", marks=requires_cuda_kernels)]
# (implementation, device) pairs for tests that hold every implementation to one property.
IMPLEMENTATIONS = [
    pytest.param("reference", "cpu", id="reference"),
    pytest.param("fused", "cpu", marks=requires_cpu_kernels, id="fused-cpu"),
    pytest.param("fused", "cuda", marks=requires_cuda_kernels, id="fused-cuda"),
]


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests pin torch to its default thread count; determinism tests change it themselves."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
