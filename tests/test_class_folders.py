"""--dataset folders: a user's images as <root>/train/<class>/* and <root>/test/<class>/*."""
import json
import os

import pytest

from data_fixtures import write_image
from see_cuda.data import ClassFolders
from see_cuda.train import cli


def make_folders(root, classes_per_split=(12, 10), per_class=3):
    for split, count in zip(("train", "test"), classes_per_split):
        for index in range(count):
            for instance in range(per_class):
                write_image(os.path.join(root, split, f"{split}-class-{index:02d}", f"{instance}.png"), index, instance)
    return str(root)


def test_labels_follow_the_sorted_folder_names_and_only_images_count(tmp_path):
    root = make_folders(tmp_path, (3, 2), per_class=2)
    (tmp_path / "train" / "train-class-01" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "stray.png").write_bytes(b"")  # a file beside the class folders
    train = ClassFolders(root, "train")
    assert train.labels == [0, 0, 1, 1, 2, 2] and train.num_classes == 3
    assert [os.path.relpath(p, root) for p in train.paths[:2]] == ["train/train-class-00/0.png",
                                                                    "train/train-class-00/1.png"]
    image, label = ClassFolders(root, "test")[3]
    assert label == 1 and image.shape[0] == 3


@pytest.mark.parametrize("damage,message", [
    (lambda root: None, "expected"),  # no test/ folder at all
    (lambda root: os.makedirs(os.path.join(root, "test")), "no class folders"),
    (lambda root: os.makedirs(os.path.join(root, "test", "empty-class")), "hold no images"),
])
def test_a_missing_or_empty_split_is_named(tmp_path, damage, message):
    root = str(tmp_path)
    for index in range(2):
        write_image(os.path.join(root, "train", f"c{index}", "0.png"), index, 0)
    damage(root)
    with pytest.raises(FileNotFoundError, match=message):
        ClassFolders(root, "test")


def test_see_train_trains_on_class_folders(tmp_path):
    root = make_folders(tmp_path / "data")
    cli.main(["--dataset", "folders", "--data-root", root, "--image-size", "16", "--batch-size", "8",
              "--cnn-width", "4", "--embedding-size", "16", "--n-expansion", "4", "--epochs", "1", "--threads", "1",
              "--no-progress", "--ks", "1", "2", "4", "--out-dir", str(tmp_path / "run")])
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert len(history) == 1 and 0 <= history[0]["recall@1"] <= 1


def test_a_missing_folder_ends_the_command_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--dataset", "folders", "--data-root", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "r")])
    assert "nowhere" in str(stopped.value.code) and "\n" not in str(stopped.value.code)
