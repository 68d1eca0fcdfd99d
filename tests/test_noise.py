"""The counter-based normal stream of see_cuda.noise: Philox known answers, layout, seeding, statistics."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from see_cuda import noise, reference

# Random123's known-answer vectors for Philox4x32-10 (its tests/kat_vectors):
# counter, key, output.
PHILOX_KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


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
