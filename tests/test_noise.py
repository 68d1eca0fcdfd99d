"""The counter-based normal stream: the reference (see_cuda.noise) and the philox_normal_ op against it."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from see_cuda import fused, noise, ops, reference

from conftest import DEVICES, requires_cpu_kernels, requires_cuda_kernels

# Random123's known-answer vectors for Philox4x32-10 (its tests/kat_vectors):
# counter, key, output.
PHILOX_KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
# The largest distance in ulp of a float32 draw of the kernels from the
# reference (measured over 10^8 draws: 1 ulp, 99.99996% bit-identical), and the
# least bit-identical fraction these tests accept.
FLOAT32_MAX_ULP = 1
FLOAT32_MIN_IDENTICAL = 0.9999
# float64 draws of the CPU op go through glibc's log/sin/cos, the reference through
# torch's: measured within 4 ulp of each other.
FLOAT64_MAX_ULP = 4
# float64 draws on CUDA use CUDA's math library. Both sides compute θ = 2π·u_b
# with one correctly rounded product, so only log, sqrt, cos/sin and the last
# product differ. With e_f the ulp error of f (1 ulp of a result is at most
# 2^-52 of it), the relative error of v = sqrt(-2 ln u_a)·cos θ is at most
#   2^-52 (e_log/2 [halved by the sqrt] + 1/2 [sqrt rounding] + e_cos + 1/2 [product]),
# and since 1 ulp of v is more than 2^-53·|v|, that is at most e_log + 2 e_cos + 2 ulp
# of v. CUDA documents log to 1 ulp and sin/cos to 2 ulp in double precision: 7 ulp.
# torch's and glibc's log/sin/cos are within 1 ulp: 5 ulp. Two implementations,
# each within its bound of the exact value, differ by at most 7 + 5 ulp.
FLOAT64_CUDA_MAX_ULP = 7 + 5


def as_words(*values):
    return tuple(torch.tensor(v, dtype=torch.int64) for v in values)


def seed_tensor(value, device="cpu"):
    return torch.tensor(value, dtype=torch.int64, device=device)


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in units in the last place, elementwise (both float32 or both float64)."""
    int_type = torch.int32 if a.dtype == torch.float32 else torch.int64

    def ordered(x):  # the float's position on the number line, as an integer
        bits = x.contiguous().view(int_type).to(torch.int64)
        magnitude = bits & (torch.iinfo(int_type).max)
        return torch.where(bits < 0, -magnitude, magnitude)

    return (ordered(a) - ordered(b)).abs()


def box_muller_in_python(word_a, word_b, dtype):
    """The definition, one pair, in Python floats (float64)."""
    if dtype == torch.float64:
        u_a, u_b = (word_a + 0.5) * 2.0**-32, (word_b + 0.5) * 2.0**-32
    else:
        u_a, u_b = ((word_a >> 8) + 0.5) * 2.0**-24, ((word_b >> 8) + 0.5) * 2.0**-24
    r = math.sqrt(-2.0 * math.log(u_a))
    theta = 2 * math.pi * u_b
    return r * math.cos(theta), r * math.sin(theta)


# ---------------------------------------------------------------- Philox
@pytest.mark.parametrize("counter, key, expected", PHILOX_KNOWN_ANSWERS)
def test_reference_philox_gives_the_known_answers(counter, key, expected):
    got = noise.philox4x32_10(as_words(*counter), as_words(*key))
    assert [int(word) for word in got] == list(expected)


@given(st.sampled_from(noise.PHILOX_MULTIPLIERS), st.integers(0, 2**32 - 1))
def test_reference_mulhilo_is_the_exact_product(multiplier, x):
    hi, lo = noise._mulhilo32(multiplier, torch.tensor(x, dtype=torch.int64))
    assert (int(hi), int(lo)) == divmod(multiplier * x, 2**32)


def test_stream_words_take_the_group_as_counter_and_the_seed_as_key():
    seed = 0x299F31D0A4093822
    words = noise.philox_words(seed_tensor(seed), 3)
    for group in range(3):
        expected = noise.philox4x32_10(as_words(group, 0, 0, 0), as_words(seed & noise.MASK32, seed >> 32))
        assert words[group].tolist() == [int(w) for w in expected]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_first_group_of_seed_zero_is_box_muller_of_the_known_answer(dtype):
    w = PHILOX_KNOWN_ANSWERS[0][2]
    expected = torch.tensor(box_muller_in_python(w[0], w[1], dtype) + box_muller_in_python(w[2], w[3], dtype),
                            dtype=torch.float64).to(dtype)
    got = noise.philox_normal(seed_tensor(0), (4,), dtype)
    assert ulp_distance(got, expected).max() <= 2


# ---------------------------------------------------------------- reference stream
@given(st.integers(0, 2**63 - 2), st.lists(st.integers(1, 9), min_size=1, max_size=3),
       st.sampled_from([torch.float32, torch.float64]))
@settings(max_examples=30, deadline=None)
def test_reference_element_depends_on_its_index_only(seed, shape, dtype):
    shaped = noise.philox_normal(seed_tensor(seed), tuple(shape), dtype)
    assert shaped.shape == tuple(shape) and shaped.dtype == dtype
    longer = noise.philox_normal(seed_tensor(seed), (shaped.numel() + 7,), dtype)
    assert torch.equal(shaped.reshape(-1), longer[: shaped.numel()])


def test_float32_draws_round_the_float64_formula_of_24_bit_uniforms():
    seed = seed_tensor(12345)
    words = noise.philox_words(seed, 256)
    u = ((words >> 8).double() + 0.5) * 2.0**-24
    r, theta = torch.sqrt(-2 * torch.log(u[:, 0::2])), 2 * math.pi * u[:, 1::2]
    expected = torch.stack((r * torch.cos(theta), r * torch.sin(theta)), dim=-1).reshape(-1).float()
    assert torch.equal(noise.philox_normal(seed, (1024,), torch.float32), expected)


def test_same_generator_seed_same_noise_and_the_generator_advances():
    def draw(generator):
        return reference.expansion_noise(5, 4, 16, torch.float32, "cpu", generator)

    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    first = draw(g)
    assert not torch.equal(g.get_state(), state)
    second = draw(g)
    assert not torch.equal(first, second)
    assert torch.equal(first, draw(torch.Generator().manual_seed(7)))
    assert not torch.equal(first, draw(torch.Generator().manual_seed(8)))


def test_expansion_noise_is_the_stream_of_one_seed_drawn_from_the_generator():
    g = torch.Generator().manual_seed(3)
    seed = noise.draw_seed(torch.Generator().manual_seed(3), "cpu")
    assert seed.dim() == 0 and seed.dtype == torch.int64 and 0 <= int(seed) < 2**63 - 1
    drawn = reference.expansion_noise(4, 5, 9, torch.float64, "cpu", g)
    assert torch.equal(drawn, noise.philox_normal(seed, (4, 4, 9), torch.float64))


def test_expansion_noise_draws_float32_for_low_precision_work():
    def draw(dtype):
        return reference.expansion_noise(3, 4, 8, dtype, "cpu", torch.Generator().manual_seed(1))

    assert torch.equal(draw(torch.bfloat16), draw(torch.float32).to(torch.bfloat16))
    assert draw(torch.float64).dtype == torch.float64


def assert_standard_normal(draws: torch.Tensor):
    """Moments, lag-1 correlation and the CDF at fixed points of a large sample.

    Tolerances are 5 standard errors (the CDF: sqrt(F(1-F)/N) at each point),
    which a correct generator fails with probability about 1e-5 per seed; the
    seeds are fixed, so the tests are deterministic.
    """
    x = draws.double().reshape(-1)
    count = x.numel()
    assert abs(x.mean().item()) < 5 / math.sqrt(count)
    assert abs(x.var().item() - 1) < 5 * math.sqrt(2 / count)
    assert abs((x[1:] * x[:-1]).mean().item()) < 5 / math.sqrt(count)
    points = torch.tensor([-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    empirical = (x.unsqueeze(0) <= points.unsqueeze(1)).double().mean(1)
    expected = torch.special.ndtr(points)
    tolerance = 5 * torch.sqrt(expected * (1 - expected) / count)
    assert ((empirical - expected).abs() <= tolerance).all(), (empirical - expected).tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_draws_are_standard_normal(dtype):
    assert_standard_normal(noise.philox_normal(seed_tensor(2024), (1 << 20,), dtype))


# ---------------------------------------------------------------- the op
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_first_group_of_seed_zero_is_box_muller_of_the_known_answer(device, dtype):
    w = PHILOX_KNOWN_ANSWERS[0][2]
    expected = torch.tensor(box_muller_in_python(w[0], w[1], dtype) + box_muller_in_python(w[2], w[3], dtype),
                            dtype=torch.float64).to(dtype)
    bound = 2 if device == "cpu" or dtype == torch.float32 else FLOAT64_CUDA_MAX_ULP
    assert ulp_distance(ops.philox_normal(seed_tensor(0, device), (4,), dtype).cpu(), expected).max() <= bound


@requires_cpu_kernels
def test_op_float32_is_within_one_ulp_of_the_reference_and_mostly_identical():
    seed = seed_tensor(987654321)
    count = 1 << 21
    distance = ulp_distance(ops.philox_normal(seed, (count,), torch.float32),
                            noise.philox_normal(seed, (count,), torch.float32))
    assert distance.max() <= FLOAT32_MAX_ULP
    assert (distance == 0).double().mean() >= FLOAT32_MIN_IDENTICAL


@requires_cpu_kernels
def test_op_float64_is_within_a_few_ulp_of_the_reference():
    seed = seed_tensor(2**62 + 17)
    count = 1 << 18
    distance = ulp_distance(ops.philox_normal(seed, (count,), torch.float64),
                            noise.philox_normal(seed, (count,), torch.float64))
    assert distance.max() <= FLOAT64_MAX_ULP


def op_bound(device: str, dtype: torch.dtype) -> int:
    """The largest ulp distance of the op's draws on `device` from the reference's."""
    if dtype == torch.float32:
        return FLOAT32_MAX_ULP
    return FLOAT64_MAX_ULP if device == "cpu" else FLOAT64_CUDA_MAX_ULP


@pytest.mark.parametrize("device", DEVICES)
@given(st.integers(0, 2**63 - 2), st.lists(st.integers(0, 40), min_size=0, max_size=3),
       st.sampled_from([torch.float32, torch.float64]))
@settings(max_examples=60, deadline=None)
def test_op_matches_the_reference_on_any_shape_and_seed(device, seed, shape, dtype):
    got = ops.philox_normal(seed_tensor(seed, device), tuple(shape), dtype).cpu()
    expected = noise.philox_normal(seed_tensor(seed), tuple(shape), dtype)
    assert got.shape == expected.shape and got.dtype == dtype
    if got.numel():
        assert ulp_distance(got, expected).max() <= op_bound(device, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_element_depends_on_its_index_only(device, dtype):
    seed = seed_tensor(11, device)
    full = ops.philox_normal(seed, (3, 5, 1001), dtype)
    assert torch.equal(full.reshape(-1), ops.philox_normal(seed, (15015,), dtype))
    for count in (1, 2, 3, 5, 255, 257, 1023):
        assert torch.equal(ops.philox_normal(seed, (count,), dtype), full.reshape(-1)[:count])


@requires_cpu_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_is_identical_across_thread_counts(dtype):
    # 2 threads split 100003 elements at 50002, inside a group of four.
    seed = seed_tensor(5)
    torch.set_num_threads(1)
    single = ops.philox_normal(seed, (100003,), dtype)
    torch.set_num_threads(2)
    assert torch.equal(ops.philox_normal(seed, (100003,), dtype), single)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_op_draws_are_standard_normal(device, dtype):
    assert_standard_normal(ops.philox_normal(seed_tensor(77, device), (1 << 22,), dtype).cpu())


@requires_cpu_kernels
def test_op_rejects_arguments_that_would_corrupt_memory():
    with pytest.raises(RuntimeError, match="contiguous"):
        torch.ops.see_cuda.philox_normal_(torch.empty(4, 6).t(), seed_tensor(0))
    with pytest.raises(RuntimeError, match="seed"):
        torch.ops.see_cuda.philox_normal_(torch.empty(4), torch.tensor([0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_noise_is_the_stream_of_one_generator_draw(device, dtype):
    """The fused path's draws are the reference's (the stream of the seed that one draw
    of the generator gives), within the op's ulp bound, and advance the generator alike."""
    generators = [torch.Generator(device=device).manual_seed(3) for _ in range(2)]
    got = fused.kernel_noise(6, 5, 24, dtype, device, generators[0])
    expected = reference.expansion_noise(6, 5, 24, dtype, device, generators[1])
    assert got.dtype == dtype and got.device.type == device
    assert ulp_distance(got.cpu(), expected.cpu()).max() <= op_bound(device, dtype)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())


def test_reference_noise_is_pure_pytorch(monkeypatch):
    """The reference draws with see_cuda.noise even where the compiled op exists."""
    monkeypatch.setattr(ops, "philox_normal", None)
    drawn = reference.expansion_noise(4, 5, 9, torch.float32, "cpu", torch.Generator().manual_seed(3))
    assert drawn.shape == (4, 4, 9)


# ---------------------------------------------------------------- the CUDA kernel
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (3,), (4, 5), (72, 15, 512), (1 << 22,)])
def test_cuda_op_matches_the_cpu_op_and_the_reference(device, dtype, shape):
    seed = 123456789
    got = ops.philox_normal(torch.tensor(seed, device=device), shape, dtype)
    assert got.device.type == device and got.shape == shape and got.dtype == dtype
    cpu = ops.philox_normal(torch.tensor(seed), shape, dtype)
    on_device_reference = noise.philox_normal(torch.tensor(seed, device=device), shape, dtype).cpu()
    expected = noise.philox_normal(torch.tensor(seed), shape, dtype)
    # float32 draws are the same double arithmetic on both sides (explicit fma,
    # correctly rounded division and sqrt); float64 draws use each side's libm.
    if dtype == torch.float32:
        assert torch.equal(got.cpu(), cpu)
        bound = FLOAT32_MAX_ULP
    else:
        bound = FLOAT64_CUDA_MAX_ULP
    assert ulp_distance(got.cpu(), cpu).max() <= bound
    assert ulp_distance(got.cpu(), expected).max() <= bound
    assert ulp_distance(on_device_reference, expected).max() <= bound


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_noise_on_cuda_does_not_synchronize(device):
    generator = torch.Generator(device=device).manual_seed(0)
    fused.kernel_noise(8, 4, 16, torch.float32, torch.device(device), generator)  # first-call initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        seed = noise.draw_seed(generator, torch.device(device))
        fused.kernel_noise(8, 4, 16, torch.float32, torch.device(device), generator)
        reference.expansion_noise(8, 4, 16, torch.float32, torch.device(device), generator)
        ops.philox_normal(seed, (8, 3, 16), torch.float32)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_cuda_graph_draws_a_new_seed_per_replay_and_the_kernel_reads_it(device):
    shape = (6, 3, 40)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture
        ops.philox_normal(noise.draw_seed(None, device), shape, torch.float32)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_seed = noise.draw_seed(None, device)
        static_draws = ops.philox_normal(static_seed, shape, torch.float32)
    seeds = []
    for _ in range(2):
        graph.replay()
        torch.cuda.synchronize()
        seeds.append(int(static_seed))
        expected = noise.philox_normal(static_seed.cpu(), shape, torch.float32)
        assert ulp_distance(static_draws.cpu(), expected).max() <= FLOAT32_MAX_ULP
    assert seeds[0] != seeds[1]
