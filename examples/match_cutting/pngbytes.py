"""PNG bytes from a numpy RGB array, so a card's Image needs no plotting library."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def png(rgb: np.ndarray, scale: int = 1) -> bytes:
    """Encode an (H, W, 3) uint8 array as PNG, each pixel blown up to scale x scale."""
    img = np.asarray(rgb, dtype=np.uint8)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    height, width, _ = img.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), img.reshape(height, -1)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))

