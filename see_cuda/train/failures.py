"""The failures a command expects (a bad flag, a run that does not match its folder, missing
fonts or libraries, a damaged or missing file) end it with one line and a non-zero exit, with
no traceback unless --debug; anything else is a bug, and keeps its traceback."""
from __future__ import annotations

from typing import Callable

from ..data.files import DamagedFileError
from ..data.glyphs.fonts import FontsMissingError
from .config import FlagError
from .model import BackboneUnavailableError
from .run_record import ConfigMismatchError

EXPECTED = (FlagError, ConfigMismatchError, BackboneUnavailableError, FontsMissingError, DamagedFileError,
            FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, (FlagError, ConfigMismatchError)) else f"{type(error).__name__}: {text}"


def run_command(prog: str, command: Callable[[], object], debug: bool):
    """command(), with an expected failure turned into `prog: error: <one line>` (exit status 1;
    130 for an interrupt); with `debug`, the traceback instead."""
    try:
        return command()
    except EXPECTED as error:
        if debug:
            raise
        raise SystemExit(f"{prog}: error: {one_line(error)} (--debug shows the traceback)") from None
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted; the last finished epoch is in the checkpoint, and --resume continues",
              flush=True)
        raise SystemExit(130) from None
