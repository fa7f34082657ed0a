"""Glyphs for the map's labels: signed distance fields (SDF) of an open font in the PBF ranges MapLibre asks for
(``/fonts/{fontstack}/{start}-{end}.pbf``), made by us from the font files on first request, so the map needs no
CDN and no external glyph server.

The format is Mapbox's glyph protobuf (``glyphs { stacks { name, range, glyphs { id, bitmap, width, height, left,
top, advance } } }``) as node-fontnik writes it: glyphs rendered at 24 px (MapLibre's ONE_EM), a 3-pixel buffer
around each bitmap, the distance field scaled so that the outline is at 192 (cutoff 0.25) and 8 pixels away is 0
or 255 (radius 8); ``top`` is measured from the font's ascender.

The distance field is exact, not a blurred bitmap: the outline of each glyph (freetype-py, unhinted, curves
flattened to short segments) gives, for every pixel centre, the distance to the nearest segment (numpy, all pixels
against all segments at once) and the sign by the non-zero winding rule that TrueType fonts use.

Fonts: DejaVu (Debian's fonts-dejavu-core, which scripts/setup.sh installs; Bitstream Vera licence), found in
``BREITBAND_FONT_DIR``. A font stack "A,B" takes each glyph from the first font in it that has it.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

import freetype
import numpy as np
from pydantic_settings import BaseSettings, SettingsConfigDict

from breitband.errors import NotFound, UnprocessableEntity

SIZE = 24            # px per em
BUFFER = 3           # px around each glyph's bitmap
RADIUS = 8.0         # px of distance from 0 to the outline
CUTOFF = 0.25        # the outline at 255 · (1 - 0.25) = 191.25
CURVE_STEPS = 8      # segments per quadratic or cubic curve piece
FONTS = {            # font name in a style's text-font → file under the font directory
    "DejaVu Sans": "DejaVuSans.ttf",
    "DejaVu Sans Bold": "DejaVuSans-Bold.ttf",
    "DejaVu Sans Oblique": "DejaVuSans-Oblique.ttf",
    "DejaVu Sans Condensed": "DejaVuSansCondensed.ttf",
    "DejaVu Sans Condensed Bold": "DejaVuSansCondensed-Bold.ttf",
}
_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})$")


class FontSettings(BaseSettings):
    """Fonts (env prefix ``BREITBAND_FONT_``)."""

    model_config = SettingsConfigDict(env_prefix="BREITBAND_FONT_", env_file=None, extra="ignore")

    dir: Path = Path("/usr/share/fonts/truetype/dejavu")


_settings: FontSettings | None = None
_face_lock = threading.Lock()        # a FreeType face is not thread-safe


def font_settings() -> FontSettings:
    global _settings
    if _settings is None:
        _settings = FontSettings()
    return _settings


def available_fonts() -> list[str]:
    d = font_settings().dir
    return [name for name, file in FONTS.items() if (d / file).exists()]


@lru_cache(maxsize=8)
def _face(name: str) -> freetype.Face:
    face = freetype.Face(str(font_settings().dir / FONTS[name]))
    face.set_char_size(SIZE * 64, 0, 72, 72)
    return face


def parse_range(value: str) -> int:
    """'256-511' → 256; anything else (not a 256-aligned range of 256 code points below 65536) is a 422."""
    m = _RANGE.match(value)
    start = int(m.group(1)) if m else -1
    if not m or start % 256 or int(m.group(2)) != start + 255 or start > 65280:
        raise UnprocessableEntity(f"Glyph range {value!r} is not a range of 256 code points such as 0-255 or "
                                  "256-511 (start a multiple of 256, end = start + 255, at most 65535)",
                                  type="invalid-glyph-range", range=value)
    return start


def parse_fontstack(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    have = available_fonts()
    unknown = [n for n in names if n not in have]
    if not names or unknown:
        raise NotFound(f"No font {', '.join(unknown) or value!r}; fonts: {', '.join(have)}", type="unknown-font",
                       fontstack=value, fonts=have)
    return names


# --- the distance field ----------------------------------------------------------------------------------------

def _outline_segments(outline) -> np.ndarray:
    """The outline as segments (N, 4): x0, y0, x1, y1 in pixels (curves flattened)."""
    segs: list[tuple[float, float, float, float]] = []
    pos = [0.0, 0.0]
    start = [0.0, 0.0]
    t = np.linspace(0.0, 1.0, CURVE_STEPS + 1)[1:]

    def move_to(a, _ctx):
        if pos != start:
            segs.append((pos[0], pos[1], start[0], start[1]))
        pos[:] = start[:] = [a.x / 64, a.y / 64]
        return 0

    def line_to(a, _ctx):
        x, y = a.x / 64, a.y / 64
        segs.append((pos[0], pos[1], x, y))
        pos[:] = [x, y]
        return 0

    def _poly(xs, ys):
        px, py = pos
        for x, y in zip(xs, ys):
            segs.append((px, py, float(x), float(y)))
            px, py = float(x), float(y)
        pos[:] = [px, py]

    def conic_to(c, a, _ctx):
        (x0, y0), (cx, cy), (x1, y1) = pos, (c.x / 64, c.y / 64), (a.x / 64, a.y / 64)
        u = 1 - t
        _poly(u * u * x0 + 2 * u * t * cx + t * t * x1, u * u * y0 + 2 * u * t * cy + t * t * y1)
        return 0

    def cubic_to(c1, c2, a, _ctx):
        (x0, y0), (ax, ay), (bx, by), (x1, y1) = pos, (c1.x / 64, c1.y / 64), (c2.x / 64, c2.y / 64), \
            (a.x / 64, a.y / 64)
        u = 1 - t
        _poly(u ** 3 * x0 + 3 * u * u * t * ax + 3 * u * t * t * bx + t ** 3 * x1,
              u ** 3 * y0 + 3 * u * u * t * ay + 3 * u * t * t * by + t ** 3 * y1)
        return 0

    outline.decompose(None, move_to=move_to, line_to=line_to, conic_to=conic_to, cubic_to=cubic_to)
    if pos != start:
        segs.append((pos[0], pos[1], start[0], start[1]))
    return np.asarray(segs, dtype=float).reshape(-1, 4)


def signed_distance_field(segs: np.ndarray, left: int, top: int, width: int, height: int) -> bytes:
    """The SDF bitmap of (width + 2·BUFFER) × (height + 2·BUFFER) pixels whose top-left pixel's top-left corner is
    at (left - BUFFER, top + BUFFER) in font pixels (y up)."""
    w, h = width + 2 * BUFFER, height + 2 * BUFFER
    xs = left - BUFFER + np.arange(w) + 0.5
    ys = top + BUFFER - np.arange(h) - 0.5
    px, py = np.meshgrid(xs, ys)
    px, py = px.ravel()[:, None], py.ravel()[:, None]
    x0, y0, x1, y1 = (segs[:, i][None, :] for i in range(4))
    dx, dy = x1 - x0, y1 - y0
    len2 = dx * dx + dy * dy
    tt = np.clip(np.divide((px - x0) * dx + (py - y0) * dy, len2, out=np.zeros_like(px * len2), where=len2 > 0),
                 0.0, 1.0)
    dist = np.sqrt(((x0 + tt * dx - px) ** 2 + (y0 + tt * dy - py) ** 2).min(axis=1))
    # non-zero winding number of a ray to +x
    up = (y0 <= py) & (y1 > py)
    down = (y1 <= py) & (y0 > py)
    cross = dx * (py - y0) - (px - x0) * dy          # > 0: the point is left of the upward segment
    winding = (up & (cross > 0)).sum(axis=1) - (down & (cross < 0)).sum(axis=1)
    signed = np.where(winding != 0, -dist, dist)
    values = 255 - 255 * (signed / RADIUS + CUTOFF)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).tobytes()


# --- protobuf ----------------------------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_varint(num: int, n: int) -> bytes:
    return _varint(num << 3) + _varint(n)


def _field_sint(num: int, n: int) -> bytes:
    return _field_varint(num, (n << 1) ^ (n >> 31) if n < 0 else n << 1)


def _field_bytes(num: int, data: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def _glyph(face: freetype.Face, codepoint: int) -> bytes | None:
    if face.get_char_index(codepoint) == 0:
        return None
    face.load_char(chr(codepoint), freetype.FT_LOAD_NO_HINTING | freetype.FT_LOAD_NO_BITMAP)
    slot = face.glyph
    advance = int(round(slot.advance.x / 64))
    ascender = int(round(face.size.ascender / 64))
    msg = _field_varint(1, codepoint)
    segs = _outline_segments(slot.outline)
    if len(segs) == 0:
        return msg + _field_varint(3, 0) + _field_varint(4, 0) + _field_sint(5, 0) + _field_sint(6, -ascender) \
            + _field_varint(7, advance)
    xmin, ymin = np.floor(segs[:, [0, 2]].min()), np.floor(segs[:, [1, 3]].min())
    xmax, ymax = np.ceil(segs[:, [0, 2]].max()), np.ceil(segs[:, [1, 3]].max())
    left, top, width, height = int(xmin), int(ymax), int(xmax - xmin), int(ymax - ymin)
    bitmap = signed_distance_field(segs, left, top, width, height)
    return (msg + _field_bytes(2, bitmap) + _field_varint(3, width) + _field_varint(4, height)
            + _field_sint(5, left) + _field_sint(6, top - ascender) + _field_varint(7, advance))


@lru_cache(maxsize=128)
def glyph_range(fontstack: tuple[str, ...], start: int) -> bytes:
    """The PBF of code points start..start+255 for the font stack (each glyph from the first font that has it)."""
    glyphs = []
    with _face_lock:
        faces = [_face(name) for name in fontstack]
        for cp in range(start, start + 256):
            for face in faces:
                g = _glyph(face, cp)
                if g is not None:
                    glyphs.append(_field_bytes(3, g))
                    break
    stack = _field_bytes(1, ",".join(fontstack).encode()) + _field_bytes(2, f"{start}-{start + 255}".encode()) \
        + b"".join(glyphs)
    return _field_bytes(1, stack)


__all__ = ["available_fonts", "font_settings", "glyph_range", "parse_fontstack", "parse_range",
           "signed_distance_field", "FONTS"]
