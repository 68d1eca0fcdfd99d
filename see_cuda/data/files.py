"""Files written whole or not at all, and read with errors that name the file.

`write_atomically` writes `<path>.<pid>.tmp`, flushes and fsyncs it, renames it over
`path` and fsyncs the folder, so that after a crash or a power loss `path` holds
either its previous content or the new one. On any failure (a full disk, an
interrupt) the temporary file is removed and `path` keeps its previous content; a
process killed outright leaves its temporary file behind, which
`remove_stale_temporaries` clears on the next start. `reading` turns a parser's
error about a damaged file into a `DamagedFileError` naming the file and what to do.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from typing import BinaryIO, Callable

_TEMPORARY = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


class DamagedFileError(ValueError):
    """A file exists but cannot be read as what it should hold; the message names it and the remedy."""


def temporary_path(path: str) -> str:
    return f"{path}.{os.getpid()}.tmp"


def write_atomically(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Calls `write(handle)` on a temporary file and renames it over `path`, durably.

    Any error leaves `path` as it was, removes the temporary file and is raised as
    an OSError naming `path` (with the errno of the original, e.g. ENOSPC).
    """
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError):
            reason = error.strerror or str(error)
            raise OSError(error.errno, f"could not write {path} ({reason}); its previous content, if any, is "
                                       "kept") from error
        raise
    fsync_directory(os.path.dirname(path) or ".")


def write_text_atomically(path: str, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode()))


def fsync_directory(directory: str) -> None:
    """Makes a rename inside `directory` durable (where the system can; a no-op elsewhere)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(descriptor)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes synchronously: a file of its own left over is stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Removes the `<name>.<pid>.tmp` files in `directory` whose process is gone; returns their paths."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match and not _process_alive(int(match["pid"])):
            path = os.path.join(directory, name)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed


@contextlib.contextmanager
def reading(path: str, remedy: str):
    """Turns a parser's error inside the block into a DamagedFileError naming `path` and `remedy`.

    A file that cannot be opened (missing, no permission, a folder), a missing
    module (ImportError) and DamagedFileError itself pass unchanged; a reader's
    OSError about the content (torch's zip reader raises EINVAL) counts as damage.
    """
    try:
        yield
    except (DamagedFileError, ImportError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError):
        raise
    except Exception as error:
        raise damaged(path, error, remedy) from error


def damaged(path: str, problem, remedy: str) -> DamagedFileError:
    """The error for a damaged `path`; `problem` is an exception or a description."""
    if isinstance(problem, BaseException):
        problem = f"{type(problem).__name__}: {problem}"
    return DamagedFileError(f"{path} is damaged or not in the expected format ({problem}); {remedy}")
