"""Issue 11, finding 4 ("download recovery trap"), as faults injected against a local HTTP
server on 127.0.0.1 (no other network): a page served instead of the file, a ``.part`` that
is not the start of the remote file, truncated or damaged archives.

Each test fails on the code before the fix: there an HTML page's checksum was recorded in
the lock file before extraction failed (so the real file was refused forever), a ``.part``
was resumed whatever its first bytes, and archive errors were bare ``EOFError`` /
``BadZipFile`` without the file name.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from dualclip.data.coco import annotation_paths, prepare_coco
from dualclip.eval.benchmarks import stage
from dualclip.fetch import FetchError, download, safe_extract
from helpers import serving

HTML = b"<!DOCTYPE html><html><body>Sign in to continue / quota exceeded</body></html>\n"
PAYLOAD = bytes(range(256)) * 600 + b"end"  # 153,603 bytes: more than the 64 KiB head check


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _RangeFiles(BaseHTTPRequestHandler):
    """Serves ``files`` and honours ``Range: bytes=a-[b]`` as real servers do."""

    files: dict[str, bytes] = {}
    log: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).log.append((self.path, self.headers.get("Range")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng:
            first, _, last = rng.split("=", 1)[1].partition("-")
            first, last = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if first >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[first:last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    handler = type("Files", (_RangeFiles,), {"files": {}, "log": []})
    with serving(handler) as base:
        yield base, handler


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lock_entries(lock: Path) -> dict:
    return json.loads(lock.read_text()) if lock.exists() else {}


# --------------------------------------------------------------------------- page instead of the file

def coco_setup(tmp_path: Path, base: str) -> tuple[dict, dict[str, bytes], Path, Path]:
    """prepare_coco's config, the real annotation zip, and where the zip and lock go."""
    root = tmp_path / "coco"
    members = {f"annotations/{p.name}": b"{}" for p in annotation_paths(Path("."), "train2017")}
    config = {"name": "coco", "root": str(root), "seed": 0, "coco_splits": {"train": "train2017"},
              "download": True, "annotations_url": f"{base}/annotations/ann.zip"}
    return config, zip_bytes(members), root / "ann.zip", root / "checksums.json"


def test_html_page_instead_of_the_coco_zip_is_not_recorded_and_a_rerun_recovers(server, tmp_path):
    """Finding 4: the HTML page's checksum went into the lock file before extraction
    failed; after deleting the file as told, the real zip mismatched it forever."""
    base, files = server[0], server[1].files
    config, real_zip, archive, lock = coco_setup(tmp_path, base)
    files["/annotations/ann.zip"] = HTML
    with pytest.raises(FetchError, match=r"ann.zip.*neither a zip nor a tar.*was deleted") as err:
        prepare_coco(config)
    assert config["annotations_url"] in str(err.value)
    assert config["annotations_url"] not in lock_entries(lock)
    archive.unlink(missing_ok=True)  # what the old message told the user to do
    files["/annotations/ann.zip"] = real_zip  # the server now sends the real file
    prepare_coco(config)
    assert all(p.is_file() for p in annotation_paths(Path(config["root"]), "train2017"))
    assert lock_entries(lock)[config["annotations_url"]]["sha256"] == sha(real_zip)


def test_a_lock_entry_recorded_for_a_page_is_removed_when_the_file_fails(server, tmp_path):
    """Finding 4, the state the old code left behind (the page's checksum in the lock and
    the page on disk): the next run deletes both, the one after gets the real zip."""
    base, files = server[0], server[1].files
    config, real_zip, archive, lock = coco_setup(tmp_path, base)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(HTML)
    lock.write_text(json.dumps({config["annotations_url"]: {"sha256": sha(HTML), "size": len(HTML),
                                                            "file": archive.name}}))
    files["/annotations/ann.zip"] = real_zip
    with pytest.raises(FetchError, match=r"checksum entry removed from .*checksums.json"):
        prepare_coco(config)
    assert not archive.exists() and config["annotations_url"] not in lock_entries(lock)
    prepare_coco(config)
    assert lock_entries(lock)[config["annotations_url"]]["sha256"] == sha(real_zip)


def archive_config(tmp_path: Path, monkeypatch, url: str, file: str) -> tuple[dict, Path]:
    monkeypatch.setitem(stage.sources()["archives"], "test_images",
                        {"url": url, "file": file, "about": "test archive"})
    config = {"results_dir": str(tmp_path / "results"), "benchmarks": {}}
    return config, stage.images_root(config) / "test_images" / "archive.json"


def test_html_page_instead_of_an_image_archive_then_the_real_one(server, tmp_path, monkeypatch):
    """Finding 4 through the benchmark stage's image archives (rule download_image_archive)."""
    base, files = server[0], server[1].files
    url = f"{base}/images.zip"
    config, marker = archive_config(tmp_path, monkeypatch, url, "images.zip")
    files["/images.zip"] = HTML
    with pytest.raises(FetchError, match=r"images.zip.*neither a zip nor a tar"):
        stage.prepare_archive("test_images", config, marker)
    lock = marker.parent / stage.LOCK_NAME
    assert url not in lock_entries(lock) and not marker.exists()
    (marker.parent / "images.zip").unlink(missing_ok=True)  # what the old message said
    real = zip_bytes({"imgs/a.png": b"A", "imgs/b.png": b"B"})
    files["/images.zip"] = real
    record = stage.prepare_archive("test_images", config, marker)
    assert record["n_files"] == 2 and (marker.parent / "imgs" / "b.png").read_bytes() == b"B"
    assert lock_entries(lock)[url]["sha256"] == sha(real)


def test_a_recorded_checksum_of_a_page_served_as_annotation_is_removed(server, tmp_path, monkeypatch):
    """Finding 4 for annotation files: when the lock already held the page's checksum,
    the page was deleted but the entry kept, so the real JSON was refused forever."""
    base, files = server[0], server[1].files
    url = f"{base}/karpathy.json"
    monkeypatch.setattr(stage, "annotation_urls", lambda b: {"coco_karpathy_test.json": url})
    out = tmp_path / "results" / "benchmark_data" / "coco_order"
    dest, lock = out / "annotations" / "coco_karpathy_test.json", out / stage.LOCK_NAME
    dest.parent.mkdir(parents=True)
    dest.write_bytes(HTML)
    lock.write_text(json.dumps({url: {"sha256": sha(HTML), "size": len(HTML), "file": dest.name}}))
    config = {"results_dir": str(tmp_path / "results"), "benchmarks": {"coco_order": {}}}
    real = (Path(__file__).parent / "fixtures" / "benchmarks" / "karpathy"
            / "coco_karpathy_test.handmade.json").read_bytes()
    files["/karpathy.json"] = real
    with pytest.raises(FetchError, match="HTML page"):
        stage.prepare("coco_order", config, out)
    assert not dest.exists() and url not in lock_entries(lock)
    ready = stage.prepare("coco_order", config, out)
    assert ready["files"][0]["sha256"] == sha(real) and lock_entries(lock)[url]["sha256"] == sha(real)


# --------------------------------------------------------------------------- resuming a .part

@pytest.mark.parametrize("part_bytes", [
    b"X" * 1000 + PAYLOAD[1000:70_000],  # wrong leading bytes, right length so far
    b"<html>an error page saved by an older run</html>",  # a page where the file should be
    PAYLOAD + b"-and an older, longer version",  # longer than the remote file (HTTP 416)
], ids=["wrong-head", "html-head", "longer-than-remote"])
def test_a_part_that_is_not_the_start_of_the_remote_file_is_not_resumed(server, tmp_path, part_bytes):
    """Finding 4: the .part was resumed with Range (or, when longer, taken as complete)
    whatever its content, and the result recorded as the file's checksum."""
    base, h = server
    h.files["/data.bin"] = PAYLOAD
    dest, lock = tmp_path / "data.bin", tmp_path / "lock.json"
    (tmp_path / "data.bin.part").write_bytes(part_bytes)
    download(f"{base}/data.bin", dest, lock_file=lock, retries=0)
    assert dest.read_bytes() == PAYLOAD
    assert lock_entries(lock)[f"{base}/data.bin"]["sha256"] == sha(PAYLOAD)
    assert h.log[-1] == ("/data.bin", None)  # restarted from byte 0


def test_a_part_with_wrong_head_and_a_pinned_checksum_recovers_in_one_run(server, tmp_path):
    """Finding 4: with a pinned checksum the resumed file failed it (one lost run)."""
    base, h = server
    h.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 4096)
    download(f"{base}/data.bin", tmp_path / "data.bin", sha256=sha(PAYLOAD), retries=0)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_a_part_whose_head_matches_is_resumed_not_refetched(server, tmp_path):
    """The head check keeps real resumes: only the missing bytes are fetched."""
    base, h = server
    h.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:100_000])
    download(f"{base}/data.bin", tmp_path / "data.bin", lock_file=tmp_path / "lock.json", retries=0)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert h.log == [("/data.bin", "bytes=0-65535"), ("/data.bin", "bytes=100000-")]


# --------------------------------------------------------------------------- damaged archives

def test_truncated_tar_gz_names_the_file_and_the_fix(tmp_path):
    """Finding 4: a truncated .tar.gz raised a bare EOFError without the file name."""
    data = tar_gz_bytes({f"imgs/{i}.bin": bytes([i]) * 50_000 for i in range(8)})
    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(FetchError, match=r"images.tar.gz is truncated or damaged.*download it again"):
        safe_extract(archive, tmp_path / "out")


def test_zip_with_a_damaged_member_names_the_file_and_leaves_no_half_member(tmp_path):
    """Finding 4: a CRC error raised a bare zipfile.BadZipFile without the archive's name."""
    data = bytearray(zip_bytes({"a.txt": b"first member " * 100, "b.txt": b"second member " * 100}))
    start = data.index(b"b.txt") + len(b"b.txt")  # b.txt's compressed data follows its name
    data[start + 5] ^= 0xFF
    archive = tmp_path / "damaged.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(FetchError, match=r"damaged.zip is truncated or damaged.*download it again"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "b.txt").exists()


def test_truncated_tar_gz_download_is_deleted_not_recorded_and_recovers(server, tmp_path, monkeypatch):
    """Finding 4 end to end: a cut-off .tar.gz (served whole, so no resume can fix it) is
    deleted with no lock entry; the next run downloads and extracts the full archive."""
    base, files = server[0], server[1].files
    url = f"{base}/images.tar.gz"
    full = tar_gz_bytes({f"imgs/{i}.bin": bytes([i]) * 50_000 for i in range(8)})
    files["/images.tar.gz"] = full[: len(full) // 2]
    config, marker = archive_config(tmp_path, monkeypatch, url, "images.tar.gz")
    with pytest.raises(FetchError, match=r"images.tar.gz is truncated or damaged.*was deleted"):
        stage.prepare_archive("test_images", config, marker)
    lock = marker.parent / stage.LOCK_NAME
    assert not (marker.parent / "images.tar.gz").exists() and url not in lock_entries(lock)
    files["/images.tar.gz"] = full
    assert stage.prepare_archive("test_images", config, marker)["n_files"] == 8
    assert lock_entries(lock)[url]["sha256"] == sha(full)
