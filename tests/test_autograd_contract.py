"""What autograd may ask of every public function, per implementation: first derivatives that match,
a clear error for a second derivative the fused kernels do not have (never a silently missing term),
and an error when an input is changed in place between the forward and the backward."""
import pytest
import torch

import see_cuda

from comparisons import draw
from conftest import IMPLEMENTATIONS, requires_cpu_kernels

NO_SECOND_DERIVATIVE = "has no second derivative"
MODIFIED_IN_PLACE = "modified by an inplace operation"


def pa_case(implementation, device):
    x, proxies = draw(8, 6, seed=1).to(device), draw(5, 6, seed=2).to(device)
    y = (torch.arange(8) % 5).to(device)
    return [x, proxies], lambda a, p: see_cuda.proxy_anchor_loss(a, y, p, alpha=8.0, implementation=implementation)


def pa_synthetic_case(implementation, device):
    x, proxies, synthetic = (draw(*shape, seed=seed).to(device) for shape, seed in (((8, 12), 3), ((4, 12), 4),
                                                                                     ((6, 12), 5)))
    y, synthetic_labels = (torch.arange(8) % 4).to(device), (torch.arange(6) % 4).to(device)
    return [x, proxies, synthetic], lambda a, p, z: see_cuda.proxy_anchor_loss_with_synthetic(
        a, y, p, z, synthetic_labels, lam=0.3, alpha=8.0, implementation=implementation)


def see_problem(device):
    x, proxies, noise = draw(10, 9, seed=6).to(device), draw(4, 9, seed=7).to(device), draw(10, 3, 9, seed=8)
    return x, (torch.arange(10) % 4).to(device), proxies, noise.to(device)


SEE_SETTINGS = dict(n_expansion=4, ratio=0.5, alpha=8.0)


def see_case(detach_synthetic):
    def case(implementation, device):
        x, y, proxies, noise = see_problem(device)
        return [x, proxies], lambda a, p: see_cuda.fused_see_loss(
            a, y, p, noise=noise, detach_synthetic=detach_synthetic, implementation=implementation, **SEE_SETTINGS)
    return case


def see_with_fixed_synthetic_points(device):
    """The detached SEE loss by definition: PA(x) + λ·PA(Z) with the synthetic points Z held fixed."""
    x, y, proxies, noise = see_problem(device)
    cosines = see_cuda.reference.positive_cosines(x, y, proxies)
    selected = see_cuda.select_for_expansion(cosines, "fraction", SEE_SETTINGS["ratio"], 0.0)
    n = SEE_SETTINGS["n_expansion"]
    Z = see_cuda.reference.spherical_expansion(x[selected], proxies[y[selected]], n, noise[selected])
    Z_labels = y[selected].repeat_interleave(n)
    return [x, proxies], lambda a, p: see_cuda.proxy_anchor_loss_with_synthetic(
        a, y, p, Z.reshape(-1, x.shape[1]), Z_labels, lam=0.2, alpha=SEE_SETTINGS["alpha"], implementation="reference")


def slerp_case(implementation, device):
    a, b = draw(5, 6, seed=9).to(device), draw(5, 6, seed=10).to(device)
    t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64, device=device)
    upstream = draw(5, 6, seed=11).to(device)
    return [a, b, t], lambda p, q, r: (see_cuda.slerp(p, q, r, implementation=implementation) * upstream).sum()


def expansion_case(implementation, device):
    z, w, noise = draw(3, 9, seed=12).to(device), draw(3, 9, seed=13).to(device), draw(3, 4, 9, seed=14).to(device)
    upstream = draw(3, 5, 9, seed=15).to(device)
    return [z], lambda q: (see_cuda.spherical_expansion(q, w, 5, noise=noise, implementation=implementation)
                           * upstream).sum()


CASES = {
    "proxy_anchor_loss": pa_case,
    "proxy_anchor_loss_with_synthetic": pa_synthetic_case,
    "fused_see_loss-detached": see_case(True),
    "fused_see_loss-attached": see_case(False),
    "slerp": slerp_case,
    "spherical_expansion": expansion_case,
}


def leaves(case, implementation, device):
    inputs, loss_fn = CASES[case](implementation, device)
    return [t.requires_grad_() for t in inputs], loss_fn


def penalised_gradients(loss_fn, inputs):
    """The gradient of loss + Σ|∂loss/∂input|², which needs the second derivative."""
    loss = loss_fn(*inputs)
    grads = torch.autograd.grad(loss, inputs, create_graph=True)
    return torch.autograd.grad(loss + sum((g ** 2).sum() for g in grads), inputs)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES)
def test_second_derivative_is_exact_or_an_error(implementation, device, case):
    """A gradient penalty: the reference's second derivative is checked; the fused kernels raise
    rather than give the first-order part alone (which they did, silently)."""
    inputs, loss_fn = leaves(case, implementation, device)
    if implementation != "reference":
        with pytest.raises(RuntimeError, match=NO_SECOND_DERIVATIVE):
            penalised_gradients(loss_fn, inputs)
    elif case == "fused_see_loss-detached":
        # Finite differences see the detach (the points move with x): the tie with the
        # points held fixed is what holds, as for the first derivative (test_see_loss.py).
        fixed_inputs, fixed_fn = see_with_fixed_synthetic_points(device)
        expected = penalised_gradients(fixed_fn, [t.requires_grad_() for t in fixed_inputs])
        for mine, theirs in zip(penalised_gradients(loss_fn, inputs), expected):
            torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-14)
    elif case == "fused_see_loss-attached":
        # The expansion's axis is the detached proxy: finite differences hold the proxies fixed.
        assert torch.autograd.gradgradcheck(lambda a: loss_fn(a, inputs[1].detach()), inputs[:1])
    else:
        assert torch.autograd.gradgradcheck(loss_fn, inputs)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES)
def test_create_graph_alone_gives_the_first_derivative(implementation, device, case):
    """create_graph=True without a second backward is unaffected."""
    inputs, loss_fn = leaves(case, implementation, device)
    plain = torch.autograd.grad(loss_fn(*inputs), inputs)
    with_graph = torch.autograd.grad(loss_fn(*inputs), inputs, create_graph=True)
    for a, b in zip(with_graph, plain):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES)
def test_inputs_changed_in_place_before_the_backward_are_an_error(implementation, device, case):
    """Gradients formed from the old values would be silently wrong for the new ones."""
    for index in range(len(CASES[case](implementation, device)[0])):
        inputs, loss_fn = leaves(case, implementation, device)
        loss = loss_fn(*inputs)
        with torch.no_grad():
            inputs[index].mul_(1.5)
        with pytest.raises(RuntimeError, match=MODIFIED_IN_PLACE):
            loss.backward()


@requires_cpu_kernels
def test_raw_one_call_op_refuses_a_second_derivative():
    """The op's C++ autograd (csrc/see_loss_autograd.cpp) scales gradients saved in the forward pass, constants
    to autograd: under create_graph it links them to an error node, as ops.no_second_derivative does."""
    x, proxies, noise = draw(10, 9, seed=6).requires_grad_(), draw(4, 9, seed=7), draw(10, 3, 9, seed=8)

    def loss_fn(a):
        return torch.ops.see_cuda.see_loss_fused.default(a, torch.arange(10) % 4, proxies, noise,
                                                         torch.zeros((), dtype=torch.int64), 4, 5, 0.0, 0.2, 32.0,
                                                         0.1, True)[0]

    with pytest.raises(RuntimeError, match=NO_SECOND_DERIVATIVE):
        penalised_gradients(loss_fn, [x])


@requires_cpu_kernels
@pytest.mark.parametrize("changed", ["x", "proxies"])
def test_raw_one_call_op_sees_its_inputs_changed_in_place(changed):
    """The op saves x and the proxies (save_for_backward) so that autograd's version counter sees them change."""
    x, proxies, noise = draw(10, 9, seed=6).requires_grad_(), draw(4, 9, seed=7).requires_grad_(), draw(10, 3, 9,
                                                                                                       seed=8)
    outputs = torch.ops.see_cuda.see_loss_fused.default(x, torch.arange(10) % 4, proxies, noise,
                                                       torch.zeros((), dtype=torch.int64), 4, 5, 0.0, 0.2, 32.0, 0.1,
                                                       True)
    with torch.no_grad():
        (x if changed == "x" else proxies).mul_(1.5)
    with pytest.raises(RuntimeError, match=MODIFIED_IN_PLACE):
        outputs[0].backward()


@pytest.mark.parametrize("implementation, device", IMPLEMENTATIONS[1:])
@pytest.mark.parametrize("loss_fn", [see_cuda.proxy_anchor_loss, see_cuda.fused_see_loss])
def test_gradient_penalty_by_backward_is_an_error_on_the_fused_path(implementation, device, loss_fn):
    """A gradient penalty by backward(): |x.grad| was 3.08 fused and 49.01 by the reference, without a sign."""
    x = torch.randn(8, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0), device="cpu")
    x = x.to(device).requires_grad_()
    proxies, y = draw(5, 32, seed=1).to(device), (torch.arange(8) % 5).to(device)
    loss = loss_fn(x, y, proxies, implementation=implementation)
    (grad_x,) = torch.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match=NO_SECOND_DERIVATIVE):
        (loss + 10 * (grad_x ** 2).sum()).backward()
