"""Result images: small PNGs whose look is derived from the prompt, at the requested aspect."""

from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageDraw

# Long side of a rendered image; the real 1024/1536 px images are scaled down to it.
LONG_SIDE = 256

_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "1024x1024": (1024, 1024),
    "2:3": (1024, 1536),
    "1024x1536": (1024, 1536),
    "3:2": (1536, 1024),
    "1536x1024": (1536, 1024),
}


def dimensions(size: str | None) -> tuple[int, int]:
    """Pixel size of a rendered image: the requested aspect, LONG_SIDE on the long side."""
    width, height = _SIZES.get(size or "1:1", (1024, 1024))
    scale = LONG_SIDE / max(width, height)
    return round(width * scale), round(height * scale)


@functools.lru_cache(maxsize=128)
def render_png(prompt: str, index: int, size: str | None) -> bytes:
    """A PNG unique to (prompt, index): a gradient between two colours and a few shapes."""
    digest = hashlib.sha256(f"{index}\x00{prompt}".encode()).digest()
    width, height = dimensions(size)
    start = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    end = Image.new("RGB", (width, height), (digest[3], digest[4], digest[5]))
    angle = digest[6] * 360 / 256
    mask = Image.linear_gradient("L").rotate(angle, expand=False).resize((width, height))
    image = Image.composite(start, end, mask)
    draw = ImageDraw.Draw(image)
    for shape in range(3):
        b = digest[8 + shape * 8 : 16 + shape * 8]
        x0, y0 = b[0] * width // 256, b[1] * height // 256
        x1 = x0 + 8 + b[2] * width // 512
        y1 = y0 + 8 + b[3] * height // 512
        colour = (b[4], b[5], b[6])
        if b[7] % 2:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
