"""The package around the kernels: what an install records, what a broken `_C` says, what a
machine without a compiler is told, and what `import see_cuda` pulls in.

The sdist, the wheel and the SEE_CUDA_BUILD=none install are built and installed into fresh
venvs by scripts/check_dist.sh (CI), not here: each takes minutes.
"""
import importlib.machinery
import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest
import torch

import see_cuda
from see_cuda import _extension, _outside_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.dirname(os.path.abspath(see_cuda.__file__))


# An editable install's import hook would find the checkout's _C for a copy that has none.
WITHOUT_EDITABLE_HOOK = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '_editable' not in repr(f)]\n"


def run_python(code: str, path: str | None = None, **env) -> subprocess.CompletedProcess:
    """`python -c code` in a fresh interpreter, importing see_cuda from `path` when given."""
    environment = {**os.environ, **env}
    if path is not None:
        environment["PYTHONPATH"] = path
        code = WITHOUT_EDITABLE_HOOK + code
    return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                          env=environment, cwd=path or ROOT, timeout=300)


def copy_of_package(tmp_path, extension_bytes: bytes | None = None, built_against: str | None = None) -> str:
    """A copy of the see_cuda package under tmp_path without its compiled _C; with `extension_bytes`,
    a _C file holding them; with `built_against`, setup.py's record of the torch it was built for."""
    shutil.copytree(PACKAGE, tmp_path / "see_cuda",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "_build_info.py"))
    if extension_bytes is not None:
        (tmp_path / "see_cuda" / ("_C" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(extension_bytes)
    if built_against is not None:
        (tmp_path / "see_cuda" / "_build_info.py").write_text(f"TORCH_VERSION = {built_against!r}\n")
    return str(tmp_path)


FUSED_CALL = """
import torch, see_cuda
print("backends", see_cuda.backends())
try:
    see_cuda.proxy_anchor_loss(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), torch.randn(2, 3),
                               implementation="fused")
except RuntimeError as error:
    print("fused:", error)
print("reference", float(see_cuda.proxy_anchor_loss(torch.ones(2, 3), torch.tensor([0, 1]), torch.eye(2, 3))))
"""


def test_a_c_that_does_not_load_warns_once_at_import_with_the_error_and_the_fix(tmp_path):
    path = copy_of_package(tmp_path, extension_bytes=b"not an ELF file", built_against="0.0.1")
    done = run_python("import see_cuda\nimport see_cuda\n" + FUSED_CALL, path)
    assert done.returncode == 0, done.stderr
    warnings_seen = [line for line in done.stderr.splitlines() if "ExtensionLoadWarning: " in line]
    assert len(warnings_seen) == 1, done.stderr
    warning = warnings_seen[0]
    assert "see_cuda._C exists but does not load" in warning
    assert "The loader said: ImportError" in warning
    assert f"compiled against torch 0.0.1; this is torch {torch.__version__}" in warning
    assert "--no-build-isolation --force-reinstall" in warning
    assert "'cpu': False" in done.stdout
    fused = next(line for line in done.stdout.splitlines() if line.startswith("fused:"))
    assert "does not load" in fused and "The loader said" in fused and "built without" not in fused
    assert "reference" in done.stdout  # the reference path still runs


def test_an_install_without_kernels_is_quiet_and_fused_says_so(tmp_path):
    done = run_python(FUSED_CALL, copy_of_package(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    fused = next(line for line in done.stdout.splitlines() if line.startswith("fused:"))
    assert "no compiled kernels" in fused and "SEE_CUDA_BUILD=none" in fused


def test_the_load_error_message_names_the_torch_only_when_it_differs(monkeypatch):
    monkeypatch.setattr(_extension, "_built_against", lambda: torch.__version__)
    assert "compiled against" not in _extension.load_failure_message(ImportError("undefined symbol: x"))
    monkeypatch.setattr(_extension, "_built_against", lambda: "2.0.0")
    message = _extension.load_failure_message(ImportError("undefined symbol: x"))
    assert "undefined symbol: x" in message and "compiled against torch 2.0.0" in message


@pytest.mark.parametrize("module", ["see_cuda", "see_cuda.train.cli"])
def test_importing_does_not_import_dynamo(module):
    """torch._dynamo costs about a second to import; see_cuda defers what needs it
    (benchmarks/import_time.py measures the import)."""
    done = run_python(f"import sys, {module}; print('torch._dynamo' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_has_kernel_carries_the_mark_that_assume_constant_result_sets():
    def probe():
        return True

    marked = torch.compiler.assume_constant_result(probe)
    marks = {key: value for key, value in vars(marked).items() if key.startswith("_dynamo")}
    assert marks  # torch marks the function itself
    for key, value in marks.items():
        assert getattr(_extension.has_kernel, key, None) == value


def test_a_function_registered_outside_the_graph_is_wrapped_on_first_lookup():
    assert "draw_seed" in _outside_graph._REGISTERED and "read_values" in _outside_graph._REGISTERED
    with pytest.raises(ValueError, match="already registered"):
        _outside_graph.register("draw_seed", print, reason="twice")
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _outside_graph.nothing_here  # noqa: B018
    wrapped = _outside_graph.read_values
    assert wrapped is _outside_graph.read_values and wrapped is not _outside_graph._REGISTERED["read_values"][0]


def test_setup_without_a_compiler_says_so_and_names_the_pure_pytorch_install():
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "CXX": "no-such-compiler-here", "SEE_CUDA_BUILD": "cpu"},
                          timeout=300)
    assert done.returncode != 0
    assert "no C++ compiler found ('no-such-compiler-here'" in done.stderr
    assert "SEE_CUDA_BUILD=none" in done.stderr
    assert "Traceback" not in done.stderr


def test_setup_refuses_an_unknown_build_mode():
    done = subprocess.run([sys.executable, "setup.py", "--version"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "SEE_CUDA_BUILD": "gpu"}, timeout=300)
    assert done.returncode != 0 and "SEE_CUDA_BUILD must be one of auto, cpu, cuda, none, got 'gpu'" in done.stderr


def test_the_install_records_one_version_the_licence_and_the_torch_it_was_built_against():
    metadata = importlib.metadata.metadata("see_cuda")
    assert metadata["Version"] == see_cuda.__version__
    assert metadata["License-Expression"] == "MIT"
    assert os.path.isfile(os.path.join(ROOT, "LICENSE"))
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    requirements = importlib.metadata.requires("see_cuda")
    if see_cuda.backends()["cpu"]:
        assert f"torch=={torch.__version__.split('+')[0]}" in requirements
