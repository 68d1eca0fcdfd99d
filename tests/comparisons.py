"""Inputs and comparisons shared by the op-family tests."""
import torch


def draw(*shape, seed, dtype=torch.float64):
    """Standard normal draws from their own seed, on the CPU (copied to a device by the caller)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close_scaled(got, expected, rtol, min_scale=0.0):
    """Entrywise rtol, plus rtol times the largest entry (at least min_scale): single
    entries can come from cancelling sums, whose error follows the summands' size."""
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    scale = max(expected.abs().max().item() if expected.numel() else 0.0, min_scale)
    torch.testing.assert_close(got, expected, rtol=rtol, atol=rtol * scale + 1e-300)


def assert_within_low_precision_error(fused, torch_low, ref32):
    """|fused - ref32| <= 2 |torch_low - ref32| + eps, eps the dtype's resolution at the tensor's scale."""
    assert fused.dtype == torch_low.dtype
    exact = ref32.detach().float().cpu()
    eps = torch.finfo(fused.dtype).eps * exact.abs().max()
    bound = 2 * (torch_low.detach().float().cpu() - exact).abs() + eps
    assert ((fused.detach().float().cpu() - exact).abs() <= bound).all()


def leaf(t, device, dtype=None):
    """A fresh leaf copy of t on `device` that requires grad (t itself is left alone)."""
    return t.detach().to(device, dtype or t.dtype, copy=True).requires_grad_()
