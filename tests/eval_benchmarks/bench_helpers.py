"""Helpers for the benchmark tests: fixture paths and placeholder images."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"


def png_bytes(size=(8, 8), color=(128, 128, 128), pattern: bool = False) -> bytes:
    """A PNG: plain ``color``, or with ``pattern`` a colour ramp so crops differ."""
    import numpy as np
    from PIL import Image

    if pattern:
        w, h = size
        x = np.linspace(0, 255, w)[None, :, None]
        y = np.linspace(0, 255, h)[:, None, None]
        arr = (np.array(color)[None, None, :] + x + 2 * y) % 256
        img = Image.fromarray(arr.astype("uint8"), "RGB")
    else:
        img = Image.new("RGB", size, color)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_images(folder: Path, names: Iterable[str], size=(8, 8), distinct: bool = True,
                pattern: bool = False) -> int:
    """Write a placeholder PNG (under the expected .jpg name) for each name; returns how
    many files were written. ``distinct`` gives each file its own colour."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = None if distinct else png_bytes(size)
    n = 0
    for name in sorted(set(names)):
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if distinct:
            h = hashlib.sha256(name.encode()).digest()
            data = png_bytes(size, (h[0], h[1], h[2]), pattern)
        else:
            data = shared
        p.write_bytes(data)
        n += 1
    return n


def json_image_names(path: Path, field: str) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    recs = data.values() if isinstance(data, dict) else data
    return [r[field] for r in recs]
