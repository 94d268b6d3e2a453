"""dualclip.fetch against a local HTTP server on 127.0.0.1 (loopback only)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from http.server import BaseHTTPRequestHandler

import pytest

from dualclip.fetch import ChecksumMismatchError, FetchError, UnsafeArchiveError, download, safe_extract, sha256_file
from helpers import serving

PAYLOAD = bytes(range(256)) * 400 + b"tail"  # 102,404 bytes


class _Handler(BaseHTTPRequestHandler):
    files: dict = {}
    log: list = []
    ignore_range = False
    cut_first = False  # first full response sends only half the bytes, then closes

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        type(self).log.append((self.path, self.headers.get("Range")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        rng = self.headers.get("Range")
        start = 0
        if rng and not self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    handler = type("H", (_Handler,), {"files": {"/data.bin": PAYLOAD}, "log": [],
                                      "ignore_range": False, "cut_first": False})
    with serving(handler) as base:
        yield base, handler


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_fresh_download_records_checksum_and_reuses_file(server, tmp_path):
    base, h = server
    dest, lock = tmp_path / "d" / "data.bin", tmp_path / "checksums.lock.json"
    assert download(base + "/data.bin", dest, lock_file=lock) == dest
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "d" / "data.bin.part").exists()
    assert json.loads(lock.read_text())[base + "/data.bin"]["sha256"] == SHA
    n = len(h.log)
    download(base + "/data.bin", dest, lock_file=lock)   # verified, not fetched again
    assert len(h.log) == n
    dest.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match=r"data.bin exists but its sha256"):
        download(base + "/data.bin", dest, lock_file=lock)


def test_resume_half_downloaded_file(server, tmp_path):
    base, h = server
    dest = tmp_path / "data.bin"
    half = len(PAYLOAD) // 2
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:half])
    download(base + "/data.bin", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    # the .part's first bytes are compared with the remote file's, then the rest is fetched
    assert h.log == [("/data.bin", f"bytes=0-{half - 1}"), ("/data.bin", f"bytes={half}-")]


def test_interrupted_transfer_is_resumed(server, tmp_path):
    base, h = server
    h.cut_first = True
    dest = tmp_path / "data.bin"
    download(base + "/data.bin", dest, sha256=SHA, retries=2, retry_wait=0)
    assert dest.read_bytes() == PAYLOAD
    assert h.log[0] == ("/data.bin", None)
    assert [r for _, r in h.log[1:]] == [f"bytes=0-{len(PAYLOAD) // 2 - 1}", f"bytes={len(PAYLOAD) // 2}-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    base, h = server
    h.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"garbage that is not the start")
    download(base + "/data.bin", tmp_path / "data.bin", sha256=SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_complete_part_file_416_is_accepted(server, tmp_path):
    base, _ = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download(base + "/data.bin", tmp_path / "data.bin", sha256=SHA)
    assert sha256_file(tmp_path / "data.bin") == SHA


def test_checksum_mismatch_pinned_and_locked(server, tmp_path):
    base, h = server
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumMismatchError, match=r"downloaded data.bin from .* deleted"):
        download(base + "/data.bin", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    lock = tmp_path / "lock.json"
    download(base + "/data.bin", dest, lock_file=lock)
    dest.unlink()
    h.files["/data.bin"] = PAYLOAD[::-1]                  # upstream file changed
    with pytest.raises(ChecksumMismatchError, match=r"checksum recorded in .*lock.json"):
        download(base + "/data.bin", dest, lock_file=lock)
    assert not dest.exists()


def test_http_errors_name_url(server, tmp_path):
    base, _ = server
    with pytest.raises(FetchError, match=r"/missing.bin failed: HTTP 404"):
        download(base + "/missing.bin", tmp_path / "m.bin", retries=0)
    lock = tmp_path / "bad.json"
    lock.write_text("{not json")
    with pytest.raises(FetchError, match=r"bad.json is not valid JSON"):
        download(base + "/data.bin", tmp_path / "x.bin", lock_file=lock)


# --------------------------------------------------------------------------- archives

def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data)


def _tar(path, members, mode="w"):
    with tarfile.open(path, mode) as tf:
        for m in members:
            info = tarfile.TarInfo(m["name"])
            data = m.get("data", b"")
            info.type = m.get("type", tarfile.REGTYPE)
            info.linkname = m.get("link", "")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)


def test_safe_zip_and_tar_extract(tmp_path):
    z = tmp_path / "ok.zip"
    _zip(z, [("imgs/a.jpg", b"A"), ("imgs/sub/b.jpg", b"B")])
    out = safe_extract(z, tmp_path / "z")
    assert sorted(p.relative_to(tmp_path / "z").as_posix() for p in out) == ["imgs/a.jpg", "imgs/sub/b.jpg"]
    t = tmp_path / "ok.tar.gz"
    _tar(t, [{"name": "d/f.txt", "data": b"hello"},
             {"name": "d/link", "type": tarfile.SYMTYPE, "link": "f.txt"}], mode="w:gz")
    safe_extract(t, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "link").read_bytes() == b"hello"


def test_tar_member_with_a_leading_slash_stays_in_the_target(tmp_path):
    # the 'data' filter strips the slash; the returned path is where the file really is
    t = tmp_path / "abs.tar"
    _tar(t, [{"name": "/abs/f.txt", "data": b"x"}])
    assert safe_extract(t, tmp_path / "t") == [(tmp_path / "t" / "abs" / "f.txt").resolve()]
    assert (tmp_path / "t" / "abs" / "f.txt").read_bytes() == b"x"


@pytest.mark.parametrize("kind, members, words", [
    ("zip", [("ok.txt", b"1"), ("../evil.txt", b"x")], "outside"),
    ("zip", [("ok.txt", b"1"), ("/tmp/evil_abs.txt", b"x")], "absolute path"),
    ("tar", [{"name": "ok.txt", "data": b"1"}, {"name": "a/../../evil.txt", "data": b"x"}], "outside"),
    ("tar", [{"name": "ok.txt", "data": b"1"},
             {"name": "l", "type": tarfile.SYMTYPE, "link": "/etc/passwd"}], "absolute path"),
    ("tar", [{"name": "ok.txt", "data": b"1"},
             {"name": "l", "type": tarfile.SYMTYPE, "link": "../outside"}], "'..'"),
    ("tar", [{"name": "ok.txt", "data": b"1"},
             {"name": "d/l", "type": tarfile.SYMTYPE, "link": "../.."}], "'..'"),
    ("tar", [{"name": "ok.txt", "data": b"1"},
             {"name": "h", "type": tarfile.LNKTYPE, "link": "../../evil"}], "outside"),
    ("tar", [{"name": "ok.txt", "data": b"1"}, {"name": "fifo", "type": tarfile.FIFOTYPE}], "special file"),
])
def test_malicious_archives_are_refused(tmp_path, kind, members, words):
    arc = tmp_path / f"bad.{kind}"
    (_zip if kind == "zip" else _tar)(arc, members)
    target = tmp_path / "deep" / "target"
    with pytest.raises(UnsafeArchiveError, match=words) as ei:
        safe_extract(arc, target)
    assert str(arc) in str(ei.value)
    assert os.listdir(target) == []          # nothing extracted, not even the safe member
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_pointing_outside_is_refused(tmp_path):
    arc = tmp_path / "link.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../etc")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(arc, tmp_path / "t")


def test_not_an_archive(tmp_path):
    f = tmp_path / "page.zip"
    f.write_text("<html>error</html>")
    with pytest.raises(FetchError, match=r"page.zip is neither a zip nor a tar.*download again"):
        safe_extract(f, tmp_path / "t")
