"""Training files with a checksum: one header line holding the SHA-256 of the bytes that
follow, then those bytes as torch.save writes them.

A changed byte (a flipped bit on disk, a damaged copy) is refused on load as a
DamagedFileError naming the file and the remedy: torch.load alone would read most such
changes without complaint, and a resumed run would silently diverge. A file written before
checksums (no header) loads unchecked, with a one-line notice on stderr.
"""
from __future__ import annotations

import hashlib
import io
import sys

import torch

from ..data.files import damaged, reading, write_atomically

HEADER = b"see_cuda sha256 "
_DIGEST_CHARS = 64
_NOTICED: set = set()


def save(path: str, state) -> None:
    """`state` written whole or not at all (write_atomically), after its checksum."""
    def write(handle):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getbuffer()
        handle.write(HEADER + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n")
        handle.write(payload)

    write_atomically(path, write)


def load(path: str, remedy: str):
    """What save(path, ...) wrote; DamagedFileError naming `path` and `remedy` if any byte changed."""
    with reading(path, remedy):
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith(HEADER):
            end = len(HEADER) + _DIGEST_CHARS
            payload = memoryview(data)[end + 1:]
            digest = hashlib.sha256(payload).hexdigest().encode("ascii")
            if data[end:end + 1] != b"\n" or digest != data[len(HEADER):end]:
                raise damaged(path, "its content does not match the checksum written with it: some byte changed "
                                    "after it was written", remedy)
        else:
            payload = data
            if path not in _NOTICED:
                _NOTICED.add(path)
                print(f"note: {path} was written without a checksum (by an earlier see_cuda); it is loaded "
                      "unchecked", file=sys.stderr, flush=True)
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
