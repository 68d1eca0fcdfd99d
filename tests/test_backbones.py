"""`--backbone resnet50` without torchvision says why it does not import, and without a weights
file starts from random weights with a warning. torchvision is replaced by stand-ins on the path:
one that fails to import as a torchvision built for another torch does, one with a small resnet50."""
import sys
import textwrap

import pytest
import torch

from see_cuda.train.model import BackboneUnavailableError, build_model

BROKEN = 'raise RuntimeError("operator torchvision::nms does not exist")\n'
WORKING = textwrap.dedent("""
    import torch
    from types import SimpleNamespace

    def resnet50(weights=None):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 2048, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        net.fc = torch.nn.Linear(2048, 1000)
        return net

    models = SimpleNamespace(resnet50=resnet50)
""")


@pytest.fixture
def stand_in_torchvision(tmp_path, monkeypatch):
    """Installs a stand-in torchvision for one test; the real one (or none) is back after it."""
    original = sys.modules.pop("torchvision", None)

    def install(source: str):
        package = tmp_path / "torchvision"
        package.mkdir()
        (package / "__init__.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    sys.modules.pop("torchvision", None)  # the stand-in, imported during the test
    if original is not None:
        sys.modules["torchvision"] = original


def test_a_torchvision_that_does_not_import_is_named_with_its_error(stand_in_torchvision):
    stand_in_torchvision(BROKEN)
    with pytest.raises(BackboneUnavailableError) as raised:
        build_model("resnet50", 64, 3)
    message = str(raised.value)
    assert f"torchvision: it is installed but does not import beside torch {torch.__version__}" in message
    assert "RuntimeError: operator torchvision::nms does not exist" in message
    assert "install the torchvision build made for this torch" in message


def test_resnet50_without_weights_starts_from_random_weights_with_a_warning(stand_in_torchvision):
    stand_in_torchvision(WORKING)
    with pytest.warns(UserWarning, match="resnet50 starts from random weights: no --backbone-weights"):
        model = build_model("resnet50", 64, 3)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 64)
