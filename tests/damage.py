"""Ways to damage a stored result file in place, as a failing disk or a stray edit would (tests only)."""

from __future__ import annotations

import struct
from pathlib import Path


def flip_array_byte(path: Path) -> None:
    """Invert one byte of the last array's data, leaving the size and the header alone."""
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))


def change_meta_digit(path: Path, after: bytes) -> None:
    """Change the first digit after `after` in the header (e.g. an event's onset), keeping the size."""
    blob = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", blob[:8])
    start = blob.index(after, 8, 8 + header_len) + len(after)
    position = next(i for i in range(start, 8 + header_len) if chr(blob[i]).isdigit())
    blob[position] = ord("7") if blob[position] != ord("7") else ord("3")
    path.write_bytes(bytes(blob))
