"""Checks an installed see_cuda, run from outside the source tree (scripts/check_dist.sh):
the kernels load (or, with --expect reference, that the install has none on purpose), a SEE
loss runs forward and backward, and the fused loss equals the reference on the same draws.

    python scripts/smoke_install.py --expect kernels     # an sdist or wheel built with kernels
    python scripts/smoke_install.py --expect reference   # SEE_CUDA_BUILD=none
"""
from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", choices=("kernels", "reference"), required=True)
    args = parser.parse_args()
    import torch

    import see_cuda
    from see_cuda._extension import LOAD_ERROR

    if LOAD_ERROR is not None:  # warned at import; here it fails the check
        sys.exit(f"smoke_install: {LOAD_ERROR}")
    here = os.path.realpath(os.path.dirname(see_cuda.__file__))
    if not here.startswith(os.path.realpath(sys.prefix) + os.sep):
        sys.exit(f"smoke_install: see_cuda was imported from {here}, not from this environment ({sys.prefix})")
    backends = see_cuda.backends()
    print(f"smoke_install: see_cuda {see_cuda.__version__} from {here}, torch {torch.__version__}, "
          f"backends {backends}")
    if backends["cpu"] != (args.expect == "kernels"):
        sys.exit(f"smoke_install: expected {args.expect}, but backends()['cpu'] is {backends['cpu']}")
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(12, 8, generator=generator, requires_grad=True)
    labels = torch.arange(12) % 4
    proxies = torch.randn(4, 8, generator=generator)
    losses = {}
    for implementation in ("auto", "reference"):
        loss = see_cuda.fused_see_loss(embeddings, labels, proxies, n_expansion=3,
                                       generator=torch.Generator().manual_seed(1), implementation=implementation)
        (grad,) = torch.autograd.grad(loss, embeddings)
        if not (torch.isfinite(loss) and torch.isfinite(grad).all()):
            sys.exit(f"smoke_install: the {implementation} loss or its gradient is not finite")
        losses[implementation] = loss.detach()
    torch.testing.assert_close(losses["auto"], losses["reference"], rtol=1e-5, atol=1e-6)
    if args.expect == "reference":
        try:
            see_cuda.proxy_anchor_loss(embeddings, labels, proxies, implementation="fused")
        except RuntimeError as error:
            if "no compiled kernels" not in str(error):
                sys.exit(f"smoke_install: implementation='fused' without kernels said: {error}")
        else:
            sys.exit("smoke_install: implementation='fused' ran in an install without kernels")
    print(f"smoke_install: the SEE loss runs ({losses['auto'].item():.6f}, equal to the reference)")


if __name__ == "__main__":
    main()
