"""Builds see_cuda._C: the C++ CPU kernels always, the CUDA kernels when possible.

SEE_CUDA_BUILD=cpu forces a CPU-only build, SEE_CUDA_BUILD=cuda demands CUDA
(and fails loudly without it); unset, CUDA is built when torch is a CUDA build
and nvcc is found. SEE_CUDA_BUILD=none builds no kernels: the pure-PyTorch
package (the reference path, on every device torch runs on, slower), for a
machine without a C++ compiler.

The kernels are built against the torch of the build environment, and a wheel
with kernels requires exactly that torch release: an extension built against
one torch does not load in another. Install torch first and build with
`pip install --no-build-isolation` (pip's build isolation would fetch the newest
torch to build against, and the wheel would then require that one).

Release builds carry no debug information (-g0, and --strip-debug at link:
about 1 MB instead of about 19 MB); SEE_CUDA_DEBUG=1 keeps it.

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
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")
BUILD_MODES = ("auto", "cpu", "cuda", "none")
# The torch a build without kernels runs with: the oldest the reference path is tested against.
TORCH_FLOOR = "torch>=2.4"
# Written beside _C at build time: the torch the kernels were compiled against, for the
# message at import when they do not load (see_cuda/_extension.py).
BUILD_INFO = "_build_info.py"
# Beside torch (whose requirement depends on the build: torch_requirement).
DEPENDENCIES = ["numpy", "Pillow", "tqdm"]


def build_mode() -> str:
    mode = os.environ.get("SEE_CUDA_BUILD", "auto").lower()
    if mode not in BUILD_MODES:
        raise SystemExit(f"SEE_CUDA_BUILD must be one of {', '.join(BUILD_MODES)}, got {mode!r}")
    return mode


def making_sdist() -> bool:
    """Whether this run only packs the sources (nothing is compiled, no torch is pinned)."""
    return "sdist" in sys.argv[1:]


def check_compiler() -> None:
    """A clear message, instead of a compiler error deep in torch, when no C++ compiler is found."""
    compiler = os.environ.get("CXX", "c++")  # what torch.utils.cpp_extension calls on Linux and macOS
    if sys.platform == "win32" or shutil.which(compiler.split()[0]):
        return
    raise SystemExit(
        f"see_cuda: no C++ compiler found ({compiler!r} is not on the PATH; CXX names another). Install one "
        "(Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) and install again, or install the "
        "pure-PyTorch package on purpose with SEE_CUDA_BUILD=none (the reference implementation only: the same "
        "results, without the fused kernels' speed)."
    )


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


def want_cuda(mode: str) -> bool:
    if mode == "cpu":
        return False
    import torch
    from torch.utils import cpp_extension

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


def release_flags() -> tuple[list, list]:
    """(compile flags, link flags) that leave the debug information out, unless SEE_CUDA_DEBUG=1."""
    if os.environ.get("SEE_CUDA_DEBUG", "0") not in ("", "0"):
        return ["-g"], []
    return ["-g0"], ["-Wl,--strip-debug"]


def extension(mode: str):
    from torch.utils import cpp_extension

    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp"))) + sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    # -fno-trapping-math lets the compiler vectorise the branch-free exp of the
    # loss loops (compares may then be speculated); -fno-math-errno lets it
    # vectorise sqrt (which then sets no errno for negative arguments). Neither
    # changes a result. No -std flag: torch's build adds the standard its
    # headers need (torch 2.14's ATen refuses anything below C++20).
    debug_flags, link_flags = release_flags()
    cxx = ["-O3", "-fopenmp", "-fno-trapping-math", "-fno-math-errno"] + debug_flags + cpu_flags()
    link = ["-fopenmp"] + link_flags
    if want_cuda(mode):
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
            extra_link_args=link,
            py_limited_api=False,
        )
    print("see_cuda: building CPU kernels only")
    return cpp_extension.CppExtension(
        "see_cuda._C",
        sources,
        include_dirs=[os.path.join(ROOT, CSRC)],
        extra_compile_args={"cxx": cxx},
        extra_link_args=link,
    )


def build_ext_command():
    """torch's BuildExtension, checking for a compiler first and recording the torch it builds against."""
    import torch
    from torch.utils import cpp_extension

    class BuildExtension(cpp_extension.BuildExtension.with_options(use_ninja=True)):
        def run(self):
            check_compiler()
            super().run()
            folder = os.path.dirname(self.get_ext_fullpath("see_cuda._C"))
            with open(os.path.join(folder, BUILD_INFO), "w") as f:
                f.write('"""Written by setup.py: the torch that see_cuda._C was compiled against."""\n'
                        f"TORCH_VERSION = {torch.__version__!r}\n")

    return BuildExtension


def torch_requirement(mode: str) -> str:
    """The wheel's torch: the release its kernels were compiled against, or any recent one without kernels."""
    if mode == "none" or making_sdist():
        return TORCH_FLOOR
    import torch

    return "torch==" + torch.__version__.split("+")[0]  # a local label (+cpu, +cu130) is matched by ==X.Y.Z


def main() -> None:
    mode = build_mode()
    if mode == "none":
        print("see_cuda: SEE_CUDA_BUILD=none, no kernels: the pure-PyTorch package (the reference path)")
        setup(install_requires=[TORCH_FLOOR] + DEPENDENCIES)
        return
    setup(
        install_requires=[torch_requirement(mode)] + DEPENDENCIES,
        ext_modules=[] if making_sdist() else [extension(mode)],
        cmdclass={} if making_sdist() else {"build_ext": build_ext_command()},
    )


main()
