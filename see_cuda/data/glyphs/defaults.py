"""The default Glyphs protocol (calibration in docs/glyphs.md)."""
from .augment import RandomAffine
from .protocol import GlyphsProtocol

DEFAULT_PROTOCOL = GlyphsProtocol(
    train_faces=("Sans-Regular-JP", "Sans-Bold-JP"),
    test_faces=("Serif-Regular-JP", "Serif-Bold-JP"),
)
