"""Atomic file writes, the JSON reader and the per-image file layout shared by every stage.

Every stage writes one file per image (or per image and subset). Writes go to a
temporary file in the same folder and are renamed into place, so a killed run never
leaves a half-written file that a resumed run would trust. The temporary name is unique
(mkstemp), so two processes writing the same file never share one, and the file gets
the mode the process umask gives a plain ``open`` (mkstemp's 0600 would hide results
from collaborators on a shared project folder). Every writer of the project goes through
:func:`atomic_write`; every JSON file is read by :func:`read_json`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy and PIL are imported where they are used: the DAG build (dualclip.workflow and
# dualclip.preflight, at every snakemake invocation) reads JSON through this module.


def _read_umask() -> int:
    """The process umask. /proc/self/status shows it without changing it (Linux 4.7+);
    elsewhere os.umask must set it to read it, so it is read once, at import, before
    any thread of ours could create a file in between."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# the mode a plain open() gives a new file
FILE_MODE = 0o666 & ~_read_umask()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(binary handle)`` on a uniquely named temporary file beside ``path``
    and rename it into place: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # before the rename: the file never appears as 0600
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy ``source`` to ``path`` atomically (readers never see a partial copy)."""
    with open(source, "rb") as source_handle:
        atomic_write(path, lambda handle: shutil.copyfileobj(source_handle, handle, 1 << 20))


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1, sort_keys: bool = False) -> None:
    data = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=_json_default).encode()
    atomic_write(path, lambda handle: handle.write(data + b"\n"))


def read_json(path: str | os.PathLike, what: str = "JSON file", fix: str = "write or download it again") -> Any:
    """The parsed JSON file ``path``. A missing file raises FileNotFoundError, one that is not
    JSON (truncated, an HTML error page) ValueError; both name the file, ``what`` it is and
    the ``fix``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} not found; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} is not valid JSON ({error}); the file is probably truncated "
                         f"or corrupted: {fix}") from error


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an HxWx3 uint8 RGB image or an HxW uint8 label map as PNG, atomically."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array))
    atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def print_report(text: str, append_to: str | os.PathLike | None = None) -> None:
    """Print a performance script's report and, when ``append_to`` is given, append it to that
    file as it is (a results file collects the sections of several runs, so no atomic rewrite)."""
    print(text)
    if append_to:
        with open(append_to, "a") as handle:
            handle.write(text)


def masks_to_bits(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pack up to 8 boolean masks into one uint8 image: bit i is mask i (overlaps allowed)."""
    if len(masks) > 8:
        raise ValueError(f"at most 8 component masks fit a uint8 bit mask, got {len(masks)}")
    import numpy as np

    bits = np.zeros(shape, dtype=np.uint8)
    for index, mask in enumerate(masks):
        bits |= (mask.astype(bool).astype(np.uint8) << index)
    return bits


def bits_to_masks(bits: np.ndarray, count: int) -> list[np.ndarray]:
    return [((bits >> index) & 1).astype(bool) for index in range(count)]


def image_id(split: str, shard: int, slot: int) -> str:
    return f"{split}-{int(shard):04d}-{int(slot):03d}"


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code that produced a result (with '+dirty' when modified)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "dualclip"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from dualclip import __version__

        return f"v{__version__}"
