"""Builds see_cuda._C: the C++ CPU kernels always, the CUDA kernels when possible.

SEE_CUDA_BUILD=cpu forces a CPU-only build, SEE_CUDA_BUILD=cuda demands CUDA
(and fails loudly without it); unset, CUDA is built when torch is a CUDA build
and nvcc is found.

CPU instruction sets. The default build runs on every CPU of its architecture:
no -march flag, so x86-64 code stays at the x86-64 baseline (SSE2) and aarch64
code at armv8-a. A wheel built on one machine must not die with an illegal
instruction on another. The loops that take the time (the loss pass, the
Philox/Box-Muller noise, the Cholesky and Gram-Schmidt frames, the row
normalisations: csrc/cpu/hot_loops.h) are compiled again for AVX2 + FMA and
for AVX-512 (csrc/cpu/hot_loops_avx2_fma.cpp, hot_loops_avx512.cpp; x86-64
with GCC), and the extension takes the best copy the CPU runs, once per
process. SEE_CUDA_CPU_ISA=baseline (or =avx2) in the environment caps that
choice. Results can differ in the last bits between copies (other summation
orders, fused multiply-adds).

SEE_CUDA_CPU_FLAGS replaces the default (empty) CPU flags, e.g.
SEE_CUDA_CPU_FLAGS=-march=native for a build that only ever runs on this
machine; a copy whose instruction set those flags already target is left out,
and the build's own code runs everywhere it is loaded.

CUDA architectures: TORCH_CUDA_ARCH_LIST, default "8.0;9.0+PTX" (sm_80 and
sm_90 code, plus PTX of sm_90 that newer GPUs compile at load time).
"""
import glob
import os
import re
import shutil

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")


def cpu_flags():
    """SEE_CUDA_CPU_FLAGS, split; none by default (portable code, see the module docstring)."""
    return os.environ.get("SEE_CUDA_CPU_FLAGS", "").split()


def find_cuda_home():
    """The CUDA toolkit root, also when `nvcc` on the PATH is a wrapper script elsewhere.

    torch guesses the root from `which nvcc`; a wrapper in /usr/local/bin makes
    that guess /usr/local, which has no libcudart. Follow the wrapper instead.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        real = os.path.realpath(nvcc)
        candidates.append(os.path.dirname(os.path.dirname(real)))
        try:
            with open(real, "r", errors="ignore") as f:
                head = f.read(4096)
            candidates += [os.path.dirname(os.path.dirname(p)) for p in re.findall(r"(/\S+/bin/nvcc)\b", head)]
        except OSError:
            pass
    candidates += sorted(glob.glob("/usr/local/cuda*"), reverse=True)
    for root in candidates:
        if glob.glob(os.path.join(root, "lib*", "libcudart.so*")) or glob.glob(
            os.path.join(root, "targets", "*", "lib", "libcudart.so*")
        ):
            return root
    return None


def wheel_cuda_includes():
    """Headers (cuBLAS, cuSPARSE) that torch's CUDA wheel ships in nvidia/cu*/include."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    found = []
    for base in spec.submodule_search_locations:
        found += sorted(glob.glob(os.path.join(base, "cu*", "include")))
        found += sorted(glob.glob(os.path.join(base, "*", "include")))
    return list(dict.fromkeys(found))


def want_cuda():
    mode = os.environ.get("SEE_CUDA_BUILD", "auto").lower()
    if mode not in ("auto", "cpu", "cuda"):
        raise SystemExit(f"SEE_CUDA_BUILD must be auto, cpu or cuda, got {mode!r}")
    if mode == "cpu":
        return False
    import torch

    cuda_home = find_cuda_home() if torch.version.cuda is not None else None
    available = torch.version.cuda is not None and cuda_home is not None
    if mode == "cuda" and not available:
        raise SystemExit(
            "SEE_CUDA_BUILD=cuda, but "
            + ("torch is a CPU build" if torch.version.cuda is None else "no CUDA toolkit (nvcc) was found")
        )
    if available:
        os.environ["CUDA_HOME"] = cuda_home
        cpp_extension.CUDA_HOME = cuda_home
    return available


def extension():
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp"))) + sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    # -fno-trapping-math lets the compiler vectorise the branch-free exp of the
    # loss loops (compares may then be speculated); -fno-math-errno lets it
    # vectorise sqrt (which then sets no errno for negative arguments). Neither
    # changes a result. No -std flag: torch's build adds the standard its
    # headers need (torch 2.14's ATen refuses anything below C++20).
    cxx = ["-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"] + cpu_flags()
    if want_cuda():
        sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        # +PTX: a GPU newer than the list JIT-compiles the sm_90 PTX instead of
        # failing with "no kernel image is available".
        arch = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        print(f"see_cuda: building CPU and CUDA kernels (TORCH_CUDA_ARCH_LIST={arch})")
        return cpp_extension.CUDAExtension(
            "see_cuda._C",
            sources,
            include_dirs=[os.path.join(ROOT, CSRC)] + wheel_cuda_includes(),
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
            extra_link_args=["-fopenmp"],
            py_limited_api=False,
        )
    print("see_cuda: building CPU kernels only")
    return cpp_extension.CppExtension(
        "see_cuda._C",
        sources,
        include_dirs=[os.path.join(ROOT, CSRC)],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
