"""Shard manifests: what finish_shard records and how a changed shard is noticed."""

import os
from types import SimpleNamespace

from dualclip.io import read_json
from dualclip.workflow import (
    finish_shard,
    per_image_files,
    shard_files,
    stale_files,
    start_shard,
    withdraw_stale_manifests,
)


def finished_shard(tmp_path):
    """A shard job as the workflow runs it: emptied folder, per-image files, manifest last."""
    manifest = tmp_path / "inpaint" / "train" / "0" / "manifest.json"
    job = SimpleNamespace(output=SimpleNamespace(manifest=str(manifest)), rule="inpaint",
                          wildcards={"split": "train", "shard": "0"}, params=SimpleNamespace(n_images=2))
    job.output.items = lambda: [("manifest", str(manifest))]
    manifest.parent.mkdir(parents=True)
    (manifest.parent / "left-over.png").write_bytes(b"from an earlier run")
    folder = start_shard(job)
    for slot in range(2):
        (folder / str(slot)).mkdir()
        (folder / str(slot) / "drop-0.png").write_bytes(b"png" * (slot + 1))
        (folder / str(slot) / "duals.json").write_text("{}")
    (folder / ".duals.json.123.tmp").write_text("a killed write")
    finish_shard(job)
    return manifest


def test_the_manifest_lists_every_file_of_the_shard_with_its_size(tmp_path):
    manifest = finished_shard(tmp_path)
    record = read_json(manifest)
    # the folder was emptied first (no left-over of an earlier run), temporary files are not listed
    assert record["files"] == {"0/drop-0.png": 3, "0/duals.json": 2, "1/drop-0.png": 6, "1/duals.json": 2}
    assert record["n_images"] == 2 and record["n_files"] == 4
    assert stale_files(manifest) == []


def test_a_deleted_resized_or_later_modified_file_makes_the_shard_stale(tmp_path):
    manifest = finished_shard(tmp_path)
    folder = manifest.parent
    (folder / "0" / "drop-0.png").unlink()
    (folder / "1" / "drop-0.png").write_bytes(b"corrupt")
    later = os.stat(manifest).st_mtime_ns + 10**9
    os.utime(folder / "1" / "duals.json", ns=(later, later))  # same size, rewritten after the shard finished
    assert stale_files(manifest) == ["0/drop-0.png is missing", "1/drop-0.png has 7 bytes, not 6",
                                     "1/duals.json was modified after the shard finished"]
    fresh = finished_shard(tmp_path / "other")
    stale = withdraw_stale_manifests([str(manifest), str(fresh), str(tmp_path / "never" / "manifest.json")])
    assert list(stale) == [str(manifest)]
    # withdrawn, so that Snakemake reruns the shard; the fresh one is untouched
    assert not manifest.exists() and (folder / "manifest.stale.json").exists() and fresh.exists()


def test_per_image_paths_of_partial_shards():
    assert shard_files("r/data/train/2/manifest.json", 3, "{slot}.json") == [f"r/data/train/2/{i}.json" for i in range(3)]
    manifests = [f"r/data/train/{shard}/manifest.json" for shard in range(3)]
    paths = per_image_files(manifests, 25, 12, "{slot}/duals.json")
    assert len(paths) == 25 and paths[12] == "r/data/train/1/0/duals.json" and paths[-1] == "r/data/train/2/0/duals.json"
