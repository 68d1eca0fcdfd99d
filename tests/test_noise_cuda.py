"""The CUDA kernel of philox_normal_ against the CPU kernel and the reference; no host syncs; CUDA graphs.

Needs a CUDA device and an install built with the CUDA kernels; skipped otherwise.
"""
import pytest
import torch

import see_cuda
from see_cuda import noise, reference
from test_noise import FLOAT32_MAX_ULP, FLOAT64_MAX_ULP, ulp_distance

HAVE_CUDA_KERNELS = torch.cuda.is_available() and see_cuda.backends()["cuda"]

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAVE_CUDA_KERNELS, reason="needs a CUDA device and see_cuda built with its CUDA kernels"),
]

if HAVE_CUDA_KERNELS:
    from see_cuda import ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (3,), (4, 5), (72, 15, 512), (1 << 22,)])
def test_cuda_op_matches_the_cpu_op_and_the_reference(dtype, shape):
    seed = 123456789
    got = ops.philox_normal(torch.tensor(seed, device="cuda"), shape, dtype)
    assert got.device.type == "cuda" and got.shape == shape and got.dtype == dtype
    cpu = ops.philox_normal(torch.tensor(seed), shape, dtype)
    on_device_reference = noise.philox_normal(torch.tensor(seed, device="cuda"), shape, dtype).cpu()
    bound = FLOAT32_MAX_ULP if dtype == torch.float32 else FLOAT64_MAX_ULP
    # float32 draws are the same double arithmetic on both sides (explicit fma,
    # correctly rounded division and sqrt); float64 draws use each side's libm.
    if dtype == torch.float32:
        assert torch.equal(got.cpu(), cpu)
    assert ulp_distance(got.cpu(), cpu).max() <= 2 * bound
    assert ulp_distance(got.cpu(), noise.philox_normal(torch.tensor(seed), shape, dtype)).max() <= bound
    assert ulp_distance(on_device_reference, noise.philox_normal(torch.tensor(seed), shape, dtype)).max() <= bound


def test_expansion_noise_on_cuda_does_not_synchronize():
    generator = torch.Generator(device="cuda").manual_seed(0)
    reference.expansion_noise(8, 4, 16, torch.float32, torch.device("cuda"), generator)  # first-call initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        seed = noise.draw_seed(generator, torch.device("cuda"))
        reference.expansion_noise(8, 4, 16, torch.float32, torch.device("cuda"), generator)
        ops.philox_normal(seed, (8, 3, 16), torch.float32)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


def test_cuda_graph_draws_a_new_seed_per_replay_and_the_kernel_reads_it():
    shape = (6, 3, 40)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture
        ops.philox_normal(noise.draw_seed(None, "cuda"), shape, torch.float32)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_seed = noise.draw_seed(None, "cuda")
        static_draws = ops.philox_normal(static_seed, shape, torch.float32)
    seeds = []
    for _ in range(2):
        graph.replay()
        torch.cuda.synchronize()
        seeds.append(int(static_seed))
        expected = noise.philox_normal(static_seed.cpu(), shape, torch.float32)
        assert ulp_distance(static_draws.cpu(), expected).max() <= FLOAT32_MAX_ULP
    assert seeds[0] != seeds[1]
