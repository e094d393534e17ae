"""A PNG bar chart of benchmark throughputs without matplotlib: numpy pixels, a 3x5 bitmap font
and a hand-written PNG encoder (zlib + CRC), so the benchmark needs nothing beyond the dev extra.

    python benchmarks/chart.py benchmarks/results/<stamp>.json   # redraw <stamp>.png
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

#: 3x5 glyphs: five rows of three bits, most significant bit on the left.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", "a": "010101111101101", "b": "110101110101110",
    "c": "011100100100011", "d": "110101101101110", "e": "111100110100111",
    "f": "111100110100100", "g": "011100101101011", "h": "101101111101101",
    "i": "111010010010111", "j": "001001001101010", "k": "101101110101101",
    "l": "100100100100111", "m": "101111111101101", "n": "110101101101101",
    "o": "010101101101010", "p": "110101110100100", "q": "010101101110011",
    "r": "110101110101101", "s": "011100010001110", "t": "111010010010010",
    "u": "101101101101111", "v": "101101101101010", "w": "101101111111101",
    "x": "101101010101101", "y": "101101010010010", "z": "111001010100111",
    ".": "000000000000010", "_": "000000000000111", "-": "000000111000000",
    "/": "001001010100100", ",": "000000000010100", ":": "000010000010000",
    "(": "010100100100010", ")": "010001001001010", " ": "000000000000000",
}  # fmt: skip
_SCALE = 2
_GLYPH_W, _GLYPH_H = 3 * _SCALE, 5 * _SCALE
_ADVANCE = _GLYPH_W + _SCALE
_ROW = _GLYPH_H + 6
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _text(pixels: Any, x: int, y: int, text: str, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    import numpy as np

    for char in text.lower():
        bits = _GLYPHS.get(char, _GLYPHS[" "])
        glyph = np.array([int(b) for b in bits], dtype=bool).reshape(5, 3)
        glyph = glyph.repeat(_SCALE, axis=0).repeat(_SCALE, axis=1)
        region = pixels[y : y + _GLYPH_H, x : x + _GLYPH_W]
        if region.shape[:2] == glyph.shape:
            region[glyph] = colour
        x += _ADVANCE


def _png(pixels: Any) -> bytes:
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def draw(results: dict[str, dict[str, dict[str, Any]]], order: list[str], path: Path) -> bool:
    """Documents per second of every task, one bar per corpus size; False without numpy."""
    try:
        import numpy as np
    except ImportError:
        return False

    def rate(figures: dict[str, Any]) -> float:
        if "error" in figures or not figures.get("seconds"):
            return 0.0
        return figures["docs"] / figures["seconds"]

    sizes = list(results)
    names = [
        n for n in order if n != "cli.help" and any(rate(results[s].get(n, {})) for s in sizes)
    ]
    top = max(rate(results[s].get(n, {})) for s in sizes for n in names) if names else 1.0
    label_width = max((len(n) for n in names), default=10) * _ADVANCE + 10
    bar_area, width = 600, 0
    width = label_width + bar_area + 12 * _ADVANCE
    height = 40 + len(names) * len(sizes) * _ROW + len(names) * 4 + 20
    pixels = np.full((height, width, 3), 255, dtype=np.uint8)
    _text(pixels, 10, 8, "documents per second (longer is faster)")
    for i, size in enumerate(sizes):
        colour = _COLOURS[i % len(_COLOURS)]
        x = 10 + 40 * _ADVANCE + i * 16 * _ADVANCE
        pixels[10 : 10 + _GLYPH_H, x : x + _GLYPH_H] = colour
        _text(pixels, x + _GLYPH_H + 4, 10, f"{int(size):,} docs".replace(",", " "))
    y = 34
    for name in names:
        _text(pixels, 10, y, name)
        for i, size in enumerate(sizes):
            value = rate(results[size].get(name, {}))
            length = int(bar_area * value / top) if top else 0
            colour = _COLOURS[i % len(_COLOURS)]
            pixels[y : y + _GLYPH_H, label_width : label_width + length] = colour
            _text(pixels, label_width + length + 4, y, f"{value:,.0f}".replace(",", " "))
            y += _ROW
        y += 4
    path.write_bytes(_png(pixels))
    return True


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import ORDER

    source = Path(sys.argv[1])
    target = source.with_suffix(".png")
    if draw(json.loads(source.read_text()), ORDER, target):
        print(target)
    else:
        print("numpy is not installed: no chart")


if __name__ == "__main__":
    main()
