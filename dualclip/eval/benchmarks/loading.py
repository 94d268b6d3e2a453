"""The loop every per-piece benchmark loader shares: which pieces to read, each piece's
annotation file, and the check that the file has the layout that loader expects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from .items import read_annotation


def annotation_files(
    annotation_dir: str | os.PathLike,
    wanted: Iterable[str] | None,
    known: Iterable[str],
    *,
    title: str,
    piece_word: str,
    layout: type,
    layout_words: str,
    file_words: str | None = None,
) -> Iterator[tuple[str, Path, object]]:
    """Yield ``(piece, path, data)`` for each wanted piece (all ``known`` ones by default).

    ``<annotation_dir>/<piece>.json`` is read with :func:`read_annotation`; an unknown piece,
    or a file whose top level is not a ``layout`` (described by ``layout_words``), is an error
    naming the piece or file; ``file_words`` says what file was expected (by default
    ``"a <title> data/ file"``).
    """
    annotation_dir = Path(annotation_dir)
    known = list(known)
    for piece in known if wanted is None else list(wanted):
        if piece not in known:
            raise ValueError(f"unknown {title} {piece_word} {piece!r}; choose from {known}")
        path = annotation_dir / f"{piece}.json"
        data = read_annotation(path, f"{title} {piece}")
        if not isinstance(data, layout):
            raise ValueError(f"{path}: expected {layout_words}, got {type(data).__name__}; "
                             f"is this {file_words or f'a {title} data/ file'}?")
        yield piece, path, data
