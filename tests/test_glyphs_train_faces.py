"""--glyphs-train-faces: the training faces of the Glyphs protocol, the pretraining's faces
that follow them, and the `family` regime built on them."""
import pytest

from see_cuda.data.glyphs import DEFAULT_PROTOCOL
from see_cuda.train import compare
from see_cuda.train.cli import parse_config
from see_cuda.train.config import FlagError
from see_cuda.train.data import glyphs_protocol
from see_cuda.train.pretrain import MIDDLE_WEIGHTS, pretrain_faces
from see_cuda.train.regimes import REGIMES
from see_cuda.train.run_record import differences, recorded_config

TWO_FACES = "Sans-Regular-JP,Serif-Regular-JP"


def test_the_flag_sets_the_training_faces_and_keeps_the_test_faces():
    protocol = glyphs_protocol(parse_config(["--glyphs-train-faces", TWO_FACES]))
    assert protocol.train_faces == ("Sans-Regular-JP", "Serif-Regular-JP")
    assert protocol.test_faces == DEFAULT_PROTOCOL.test_faces
    assert glyphs_protocol(parse_config([])) == DEFAULT_PROTOCOL


def test_pretraining_uses_the_retrieval_training_faces_and_the_middle_weights():
    # The default protocol's pretraining faces are those its backbones were pretrained on.
    assert pretrain_faces(DEFAULT_PROTOCOL) == DEFAULT_PROTOCOL.train_faces + MIDDLE_WEIGHTS
    two = glyphs_protocol(parse_config(["--glyphs-train-faces", TWO_FACES]))
    assert pretrain_faces(two) == ("Sans-Regular-JP", "Serif-Regular-JP") + MIDDLE_WEIGHTS
    with_middle = glyphs_protocol(parse_config(["--glyphs-train-faces", "Sans-Medium-JP"]))
    assert pretrain_faces(with_middle) == MIDDLE_WEIGHTS
    assert not set(pretrain_faces(two)) & set(DEFAULT_PROTOCOL.test_faces)


@pytest.mark.parametrize("faces", ["Serif-Black-JP", "Sans-Regular-JP,Sans-Thin-JP", "Sans-Regular-JP,,",
                                   "Sans-Regular", "Sans-Regular-JP,Sans-Regular-JP"])
def test_a_bad_face_list_is_refused_naming_the_flag(faces):
    with pytest.raises(FlagError, match="--glyphs-train-faces"):
        parse_config(["--glyphs-train-faces", faces]).check()


def test_a_run_recorded_before_the_flag_trained_on_the_default_faces():
    config = parse_config([])
    old = {key: value for key, value in recorded_config(config).items() if key != "glyphs_train_faces"}
    assert differences(old, recorded_config(config)) == []
    other = parse_config(["--glyphs-train-faces", TWO_FACES])
    assert [line.split(":")[0] for line in differences(old, recorded_config(other))] == ["--glyphs-train-faces"]


def test_the_family_regime_compares_its_losses_unless_told_otherwise():
    regime = REGIMES["family"]
    assert regime.base_losses == ("proxy-anchor", "normalized-softmax", "arcface")
    for given, expected in (([], list(regime.base_losses)), (["--base-losses", "cosface"], ["cosface"])):
        options, flags = compare.parse(["--regime", "family", "--out", "out"] + given)
        options.base_losses = compare.losses_to_compare(options, regime)
        base = compare.base_config(regime, flags, regime.train_classes)
        cells = compare.build_cells(options, regime, base, flags)
        assert sorted({cell.base_loss for cell in cells}) == sorted(expected)
        assert {(cell.embedding_size, cell.train_classes, cell.epochs) for cell in cells} == {
            (32, 1000, 40), (128, 1000, 40), (32, 4000, 24), (128, 4000, 24)}
        assert glyphs_protocol(base).train_faces == ("Sans-Regular-JP", "Serif-Regular-JP")
