"""The default Glyphs protocol; docs/glyphs.md records how it was calibrated.

Train on the four faces of the base package fonts-noto-cjk (Sans and Serif,
Regular and Bold); test on unseen characters in the four extreme weights that
only fonts-noto-cjk-extra has (Sans Thin and Black, Serif ExtraLight and Black),
so every test neighbour is a style the network never saw. The same small affine
distortion is drawn for training images (anew each time) and for test images
(once, fixed), so a test image's nearest twin is never a pixel-aligned copy.
"""
from .augment import RandomAffine
from .protocol import GlyphsProtocol

SHARED_DISTORTION = RandomAffine(max_rotation=8.0, scale_range=(0.9, 1.1), max_shift=0.06)

DEFAULT_PROTOCOL = GlyphsProtocol(
    train_faces=("Sans-Regular-JP", "Sans-Bold-JP", "Serif-Regular-JP", "Serif-Bold-JP"),
    test_faces=("Sans-Thin-JP", "Sans-Black-JP", "Serif-ExtraLight-JP", "Serif-Black-JP"),
    num_train_classes=1000,
    num_test_classes=1000,
    image_size=64,
    split_seed=0,
    train_augmentation=SHARED_DISTORTION,
    test_distortion=SHARED_DISTORTION,
)
