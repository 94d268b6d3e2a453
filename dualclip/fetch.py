"""Resumable, verified downloads and safe archive extraction (standard library, plus
the project's atomic writer).

* :func:`download` fetches a URL into ``<dest>.part`` and resumes an interrupted
  download with an HTTP ``Range`` request once the server has confirmed that the
  ``.part`` is the start of the remote file (see :func:`_resume_offset`); when the file
  is complete and its SHA-256 checks out, ``.part`` is atomically renamed to ``dest``.
* Checksums: a pinned ``sha256`` always wins. Without one, the checksum is recorded in a
  JSON lock file (``lock_file``) and later downloads (and already present files) are
  verified against it. It is recorded only after the file passed the caller's
  ``validate`` check (parsed as JSON, extracted, ...): a file that fails it is deleted
  and its lock entry removed, so running again really downloads it again -- an HTML
  error page never becomes "the" checksum that the real file then mismatches.
* :func:`download_and_extract` is :func:`download` with extraction as the validation.
* :func:`safe_extract` unpacks zip and tar archives after checking every member; nothing
  is extracted if any member is unsafe. Tar members go through the standard library's
  ``filter="data"`` (no path or link outside the target, no device files); zip members
  are written here (atomically, so a bad CRC leaves no file), after refusing absolute
  paths and ``..`` escaping the target. Symbolic links may only point downwards. A damaged
  archive (truncated, bad CRC) raises :class:`CorruptArchiveError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from dualclip.io import atomic_write, read_json, write_json

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HEAD_CHECK = 1 << 16  # bytes of a .part compared with the remote file before resuming it


class FetchError(RuntimeError):
    """A download or extraction failed; the message names the file and the fix."""


class ChecksumMismatchError(FetchError):
    pass


class InvalidDownloadError(FetchError):
    """A downloaded file failed its validation; it was deleted and not recorded."""


class UnsafeArchiveError(FetchError):
    pass


class CorruptArchiveError(FetchError):
    """A truncated or damaged archive (the message names it)."""


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
        data = read_json(lock_file, "checksum lock file",
                         "fix or delete it (deleting re-records checksums on the next download)")
    except ValueError as e:
        raise FetchError(str(e)) from e
    if not isinstance(data, dict):
        raise FetchError(f"checksum lock file {lock_file} should hold a JSON object; fix or delete it")
    return data


def _write_lock(lock_file: Path, data: dict) -> None:
    write_json(lock_file, data, indent=2, sort_keys=True)


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


def _forget(url: str, lock_file: Path | None) -> bool:
    """Remove ``url``'s entry from the lock file; True if there was one."""
    if lock_file is None or not lock_file.exists():
        return False
    data = _read_lock(lock_file)
    if data.pop(_lock_key(url), None) is None:
        return False
    _write_lock(lock_file, data)
    return True


def _open(url: str, timeout: float, byte_range: str | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": "dualclip-fetch/1"})
    if byte_range is not None:
        req.add_header("Range", f"bytes={byte_range}")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (URL chosen by the caller)


def _content_range(header: str | None) -> tuple[int, int, int | None] | None:
    """``"bytes 100-199/200"`` -> (100, 199, 200); the total is None for ``/*``."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (header or "").strip())
    if match is None:
        return None
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def _resume_offset(url: str, part: Path, timeout: float) -> tuple[int, int | None, str]:
    """(bytes of ``part`` to keep, the remote file's total length, why not when 0).

    The rule, the same with or without a pinned checksum: ask the server for the remote
    file's first k = min(size of .part, 64 KiB) bytes (``Range: bytes=0-(k-1)``). The
    .part is kept, and resumed from its end, only if the server answers ``206`` with
    ``Content-Range: bytes 0-(at least k-1)/T``, a known total T no smaller than the
    .part, and the .part's first k bytes. Anything else -- no Range support, an unknown or
    smaller total, different leading bytes (a corrupted .part, or a file that changed
    upstream) -- restarts the download from byte 0. This costs one request of at most
    64 KiB per resume and needs no state beside the .part. A .part whose middle was
    damaged while its head and length agree is caught only by a checksum (pinned or
    recorded); on a mismatch the file is deleted and the next run starts from zero.
    """
    have = part.stat().st_size
    k = min(have, HEAD_CHECK)
    try:
        resp = _open(url, timeout, f"0-{k - 1}")
    except urllib.error.HTTPError as e:
        if e.code == 416:  # even byte 0 is "not satisfiable": the remote file is empty
            return 0, None, "the server reports an empty file"
        raise
    with resp:
        if resp.status != 206:
            return 0, None, "the server does not support Range requests"
        got = _content_range(resp.headers.get("Content-Range"))
        # Some servers send more than the range asked for; the first k bytes are enough.
        if got is None or got[0] != 0 or got[1] < k - 1 or got[2] is None:
            return 0, None, f"the server answered Content-Range {resp.headers.get('Content-Range')!r}"
        total = got[2]
        if total < have:
            return 0, None, f"it holds {have} bytes but the remote file has {total}"
        remote_head = b""
        while len(remote_head) < k:  # read() may return less than asked before the end
            block = resp.read(k - len(remote_head))
            if not block:
                break
            remote_head += block
    with open(part, "rb") as f:
        local_head = f.read(k)
    if remote_head != local_head:
        return 0, None, f"its first {k} bytes differ from the remote file's"
    return have, total, ""


def _fetch_to_part(url: str, part: Path, timeout: float, retries: int, retry_wait: float) -> None:
    """Download ``url`` into ``part``, resuming a verified ``part`` (see :func:`_resume_offset`)."""
    attempt = 0
    while True:
        try:
            start, total = 0, None
            if part.exists() and part.stat().st_size > 0:
                start, total, why = _resume_offset(url, part, timeout)
                if start == 0:
                    log.info("%s: not resuming %s (%s); downloading from the start", url, part.name, why)
                elif start == total:
                    log.info("%s: %s already holds the whole file", url, part.name)
                    return
            try:
                resp = _open(url, timeout, f"{start}-" if start else None)
            except urllib.error.HTTPError as e:
                if e.code == 416 and start > 0:
                    # The server just confirmed more bytes than it now accepts: start over.
                    log.info("%s: server refused the resume of %s; restarting", url, part.name)
                    part.unlink()
                    continue
                raise
            with resp:
                mode = "wb"
                if start > 0 and resp.status == 206:
                    got = _content_range(resp.headers.get("Content-Range"))
                    if got is None or got[0] != start or got[2] != total:
                        log.info("%s: server resumed %s with Content-Range %r, expected bytes "
                                 "%d-/%s; restarting", url, part.name,
                                 resp.headers.get("Content-Range"), start, total)
                        part.unlink()
                        continue
                    mode = "ab"
                    log.info("resuming %s at byte %d of %d", part.name, start, total)
                elif start > 0:
                    log.info("%s: server ignored the Range request, restarting %s", url, part.name)
                    start, total = 0, None
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
                if total is not None and start + written < total:
                    raise http.client.IncompleteRead(b"", total - start - written)
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


def _validate(url: str, dest: Path, validate: Callable[[Path], object], lock: Path | None,
              pinned: bool) -> None:
    """Run the caller's check on ``dest``. A file that fails it (``FetchError`` or
    ``ValueError``) is deleted together with its lock entry -- a checksum recorded for an
    invalid file is worthless and would make the real file look tampered with."""
    try:
        validate(dest)
    except (FetchError, ValueError) as e:
        dest.unlink(missing_ok=True)
        forgot = not pinned and _forget(url, lock)
        raise InvalidDownloadError(
            f"{dest.name} from {url} failed its check: {e}. The file was deleted"
            + (f" and its checksum entry removed from {lock}" if forgot else "")
            + "; no checksum was recorded, so running again downloads it anew. If the same "
              "error comes back, the server is not sending the file itself (an HTML error, "
              "login or quota page, say): download it by hand") from e


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    lock_file: str | os.PathLike | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait: float = 2.0,
    validate: Callable[[Path], object] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    If ``dest`` exists it is verified against the pinned or recorded checksum without
    downloading. A checksum mismatch raises :class:`ChecksumMismatchError` and removes
    the bad download. ``validate(dest)`` (raising ``FetchError`` or ``ValueError`` for a
    bad file) runs before the checksum is recorded; on failure the file and its lock
    entry are removed and :class:`InvalidDownloadError` is raised.
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
    else:
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
        log.info("downloaded %s (sha256 %s)", dest, digest)
    if validate is not None:
        _validate(url, dest, validate, lock, pinned=bool(sha256))
    _record(url, dest, digest, lock)
    return dest


def download_and_extract(
    url: str,
    archive: str | os.PathLike,
    target: str | os.PathLike,
    sha256: str | None = None,
    lock_file: str | os.PathLike | None = None,
    **options,
) -> list[Path]:
    """:func:`download` ``url`` to ``archive`` and :func:`safe_extract` it into ``target``,
    the extraction being the validation: the checksum is recorded only once the archive
    extracted cleanly, and a damaged, unsafe or non-archive file is deleted with its lock
    entry. Returns the extracted paths; ``options`` go to :func:`download`."""
    extracted: list[Path] = []
    download(url, archive, sha256=sha256, lock_file=lock_file,
             validate=lambda path: extracted.extend(safe_extract(path, target)), **options)
    return extracted


# --------------------------------------------------------------------------- extraction

def _zip_member_path(archive: Path, name: str, target: Path) -> Path:
    """Where a zip member goes; absolute paths and paths leaving ``target`` are refused."""
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


def _check_symlink(archive: Path, name: str, link: str, target: Path) -> None:
    """Symbolic links may only point downwards from their folder (relative, no ``..``): then
    no chain of links can lead outside, whatever order the members are written in. tarfile's
    ``data`` filter resolves each link against what is on disk when it is checked, and
    crafted chains of ``..`` links got past it before Python 3.11.13 (CVE-2025-4517)."""
    pure = PurePosixPath(link.replace("\\", "/"))
    if pure.is_absolute() or (len(link) > 1 and link[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} links to absolute path "
                                 f"{link!r}; refusing to extract this archive")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link to {link!r}, "
                                 f"which goes up with '..' and may point outside {target}; "
                                 f"refusing to extract this archive")


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


# What a truncated or damaged archive raises while it is read (gzip and xz streams inside
# tar included, truncated bzip2 too); an OSError of the target disk is not among them.
_DAMAGED = (zipfile.BadZipFile, tarfile.ReadError, tarfile.CompressionError, EOFError,
            zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Extract a zip or tar archive (any compression) into ``target`` after checking
    every member; returns the extracted file paths. Raises :class:`UnsafeArchiveError`
    naming the member if any is unsafe (nothing is extracted then), and
    :class:`CorruptArchiveError` naming the archive if it is truncated or damaged."""
    archive = Path(archive)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    if not archive.is_file():
        raise FetchError(f"archive {archive} not found; download it first")
    try:
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, target)
        if tarfile.is_tarfile(archive):
            return _extract_tar(archive, target)
    except _DAMAGED as e:
        raise CorruptArchiveError(
            f"{archive} is truncated or damaged ({type(e).__name__}: {e}); the download was "
            f"probably interrupted or the file changed upstream: delete it and download it "
            f"again") from e
    raise FetchError(f"{archive} is neither a zip nor a tar archive; the download is "
                     f"probably incomplete or an HTML error page: delete it and download again")


def _extract_zip(archive: Path, target: Path) -> list[Path]:
    out = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _zip_member_path(archive, info.filename, target)
            if _zip_is_symlink(info):
                _check_symlink(archive, info.filename, zf.read(info).decode("utf-8", "replace"), target)
        for info in infos:
            dest = _zip_member_path(archive, info.filename, target)
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
            # The CRC is checked when the member has been read to its end: the atomic
            # write keeps a damaged member from appearing under its real name.
            with zf.open(info) as member:
                atomic_write(dest, lambda handle: shutil.copyfileobj(member, handle, CHUNK))
            out.append(dest)
    return out


def _extract_tar(archive: Path, target: Path) -> list[Path]:
    with tarfile.open(archive) as tf:
        # getmembers reads the whole archive, so a truncated one fails here, before any write.
        members = tf.getmembers()
        filtered = []
        for m in members:  # checked for every member first: all or nothing
            if m.issym():
                _check_symlink(archive, m.name, m.linkname, target)
            try:
                filtered.append(tarfile.data_filter(m, str(target)))
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"{archive}: member {e}; refusing to extract this "
                                         f"archive (get it from a trusted source)") from e
        try:  # the 'data' filter checks each member again against what is on disk by then
            tf.extractall(target, members=members, filter="data")
        except tarfile.FilterError as e:
            raise UnsafeArchiveError(f"{archive}: member {e}; refusing to extract the rest of "
                                     f"this archive (get it from a trusted source)") from e
    return [target / os.path.normpath(m.name) for m in filtered if not m.isdir()]
