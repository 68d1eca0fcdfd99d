"""Builds see_cuda._C: the C++ CPU kernels always, the CUDA kernels when possible.

SEE_CUDA_BUILD=cpu forces a CPU-only build, SEE_CUDA_BUILD=cuda demands CUDA
(and fails loudly without it); unset, CUDA is built when torch is a CUDA build
and nvcc is found. SEE_CUDA_CPU_FLAGS overrides the CPU tuning flags
(default -march=native, as this is a from-source build for this machine).
"""
import glob
import os
import platform
import re
import shutil

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")


def cpu_flags():
    if "SEE_CUDA_CPU_FLAGS" in os.environ:
        return os.environ["SEE_CUDA_CPU_FLAGS"].split()
    return ["-march=native"] if platform.machine() in ("x86_64", "AMD64", "aarch64") else []


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
        arch = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
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
