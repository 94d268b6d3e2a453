"""Resumable, verified downloads and safe archive extraction (standard library only).

* :func:`download` fetches a URL into ``<dest>.part`` and resumes an interrupted
  download with an HTTP ``Range`` request; when the file is complete and its SHA-256
  checks out, ``.part`` is atomically renamed to ``dest``.
* Checksums: a pinned ``sha256`` always wins. Without one, the first download records
  the checksum in a JSON lock file (``lock_file``) and later downloads (and already
  present files) are verified against it.
* :func:`safe_extract` unpacks zip and tar archives after checking every member: no
  absolute paths, no ``..`` escaping the target folder, no links pointing outside it, no
  device files. Nothing is extracted if any member is unsafe.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download or extraction failed; the message names the file and the fix."""


class ChecksumMismatchError(FetchError):
    pass


class UnsafeArchiveError(FetchError):
    pass


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- lock file

def _read_lock(lock_file: Path) -> dict:
    if not lock_file.exists():
        return {}
    try:
        with open(lock_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise FetchError(f"checksum lock file {lock_file} is not valid JSON ({e}); fix or "
                         f"delete it (deleting re-records checksums on the next download)") from e
    if not isinstance(data, dict):
        raise FetchError(f"checksum lock file {lock_file} should hold a JSON object; fix or delete it")
    return data


def _write_lock(lock_file: Path, data: dict) -> None:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=lock_file.parent, prefix=lock_file.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, lock_file)


def _lock_key(url: str) -> str:
    return url


# --------------------------------------------------------------------------- download

def _expected_sha(url: str, sha256: str | None, lock_file: Path | None) -> tuple[str | None, str]:
    """(expected checksum or None, where it comes from)."""
    if sha256:
        return sha256.lower(), "pinned checksum"
    if lock_file is not None:
        entry = _read_lock(lock_file).get(_lock_key(url))
        if entry:
            return str(entry["sha256"]).lower(), f"checksum recorded in {lock_file}"
    return None, ""


def _record(url: str, path: Path, digest: str, lock_file: Path | None) -> None:
    if lock_file is None:
        return
    data = _read_lock(lock_file)
    key = _lock_key(url)
    if data.get(key, {}).get("sha256") == digest:
        return
    data[key] = {"sha256": digest, "size": path.stat().st_size, "file": path.name}
    _write_lock(lock_file, data)
    log.info("recorded sha256 of %s in %s", path.name, lock_file)


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "dualclip-fetch/1"})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (URL chosen by the caller)


def _content_range_start(header: str | None) -> int | None:
    # "bytes 100-199/200"
    if not header or not header.startswith("bytes "):
        return None
    try:
        return int(header[6:].split("-", 1)[0])
    except ValueError:
        return None


def _fetch_to_part(url: str, part: Path, timeout: float, retries: int, retry_wait: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size."""
    attempt = 0
    while True:
        start = part.stat().st_size if part.exists() else 0
        try:
            try:
                resp = _open(url, start, timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and start > 0:
                    # Range not satisfiable: the .part already holds the whole file.
                    log.info("%s: server reports %s already complete", url, part.name)
                    return
                raise
            with resp:
                status = resp.status
                if start > 0 and status == 206:
                    got = _content_range_start(resp.headers.get("Content-Range"))
                    if got != start:
                        raise FetchError(f"{url}: server resumed at byte {got}, not {start}; "
                                         f"delete {part} and download again")
                    mode = "ab"
                    log.info("resuming %s at byte %d", part.name, start)
                else:
                    if start > 0:
                        log.info("%s: server ignored the Range request, restarting %s", url, part.name)
                    mode = "wb"
                length = resp.headers.get("Content-Length")
                expected = int(length) if length is not None and length.isdigit() else None
                written = 0
                with open(part, mode) as f:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        written += len(block)
                if expected is not None and written < expected:
                    raise http.client.IncompleteRead(b"", expected - written)
            return
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                TimeoutError, OSError) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code < 500 and e.code != 429:
                raise FetchError(f"downloading {url} failed: HTTP {e.code} {e.reason}; check "
                                 f"the URL (or your access rights to it)") from e
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise FetchError(
                    f"downloading {url} failed after {retries + 1} tries ({e!r}); "
                    f"{have} bytes are kept in {part}; run again to resume") from e
            wait = min(retry_wait * 2 ** (attempt - 1), 30.0)
            log.warning("download of %s interrupted (%r); retry %d/%d in %.1fs",
                        url, e, attempt, retries, wait)
            time.sleep(wait)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    lock_file: str | os.PathLike | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait: float = 2.0,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    If ``dest`` exists it is verified against the pinned or recorded checksum (and
    recorded if neither exists) without downloading. A checksum mismatch raises
    :class:`ChecksumMismatchError` and removes the bad download.
    """
    dest = Path(dest)
    lock = Path(lock_file) if lock_file is not None else None
    expected, origin = _expected_sha(url, sha256, lock)
    if dest.exists():
        digest = sha256_file(dest)
        if expected is not None and digest != expected:
            raise ChecksumMismatchError(
                f"{dest} exists but its sha256 {digest} does not match the {origin} "
                f"{expected}; delete {dest} to download it again from {url}")
        _record(url, dest, digest, lock)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch_to_part(url, part, timeout, retries, retry_wait)
    digest = sha256_file(part)
    if expected is not None and digest != expected:
        part.unlink()
        raise ChecksumMismatchError(
            f"downloaded {dest.name} from {url} has sha256 {digest}, but the {origin} is "
            f"{expected}; the bad download was deleted. Run again; if it keeps failing the "
            f"file changed upstream: check it and update the checksum"
            + (f" (or remove its entry from {lock})" if lock is not None and origin != "pinned checksum" else ""))
    os.replace(part, dest)
    _record(url, dest, digest, lock)
    log.info("downloaded %s (sha256 %s)", dest, digest)
    return dest


# --------------------------------------------------------------------------- extraction

def _check_member_path(archive: Path, name: str, target: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing "
                                 f"to extract this archive (get it from a trusted source)")
    dest = (target / pure).resolve()
    if dest != target and target not in dest.parents:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside "
                                 f"{target}; refusing to extract this archive (get it from "
                                 f"a trusted source)")
    return dest


def _check_link(archive: Path, name: str, link: str, target: Path, hard: bool) -> None:
    """Links must stay inside ``target``. Symbolic links may only point downwards from
    their folder (relative, no ``..``): then no chain of links can lead outside, whatever
    order the members are written in."""
    pure = PurePosixPath(link.replace("\\", "/"))
    if pure.is_absolute() or (len(link) > 1 and link[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} links to absolute path "
                                 f"{link!r}; refusing to extract this archive")
    if hard:
        _check_member_path(archive, link, target)
        return
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link to {link!r}, "
                                 f"which goes up with '..' and may point outside {target}; "
                                 f"refusing to extract this archive")


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract a zip or tar archive (any compression) into ``target`` after checking
    every member; returns the extracted file paths. Raises :class:`UnsafeArchiveError`
    naming the member if any is unsafe (nothing is extracted then)."""
    archive = Path(archive)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    if not archive.is_file():
        raise FetchError(f"archive {archive} not found; download it first")
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, target)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, target)
    raise FetchError(f"{archive} is neither a zip nor a tar archive; the download is "
                     f"probably incomplete or an HTML error page: delete it and download again")


def _extract_zip(archive: Path, target: Path) -> list[Path]:
    out = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_path(archive, info.filename, target)
            if _zip_is_symlink(info):
                _check_link(archive, info.filename, zf.read(info).decode("utf-8", "replace"),
                            target, hard=False)
        for info in infos:
            dest = _check_member_path(archive, info.filename, target)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if _zip_is_symlink(info):
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(zf.read(info).decode("utf-8"), dest)
                out.append(dest)
                continue
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            out.append(dest)
    return out


def _extract_tar(archive: Path, target: Path) -> list[Path]:
    out = []
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member_path(archive, m.name, target)
            if m.issym() or m.islnk():
                _check_link(archive, m.name, m.linkname, target, hard=m.islnk())
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device, fifo or "
                                         f"other special file; refusing to extract this archive")
        for m in members:
            dest = _check_member_path(archive, m.name, target)
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                os.symlink(m.linkname, dest)
            elif m.islnk():
                src = _check_member_path(archive, m.linkname, target)
                if dest.exists():
                    dest.unlink()
                shutil.copyfile(src, dest)
            else:
                f = tf.extractfile(m)
                assert f is not None
                with f, open(dest, "wb") as dst:
                    shutil.copyfileobj(f, dst, CHUNK)
            out.append(dest)
    return out
