"""Issue 11, findings 1 (resume from a stale checkpoint), 6 (shared folders: file modes and
unique temporary names) and 7 (untrusted loading): each test fails on the code before the fix."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dualclip.io import read_json, read_rgb, write_png
from dualclip.train.trainer import train
from dualclip.workflow import finish_shard, start_shard

REPO = Path(__file__).resolve().parents[1]


def finished_shard(folder: Path, contents: dict[str, bytes]) -> Path:
    """A shard job as the workflow runs it: files written, then finish_shard's manifest."""
    manifest = folder / "manifest.json"
    job = SimpleNamespace(output=SimpleNamespace(manifest=str(manifest)), rule="inpaint",
                          wildcards={"split": "train", "shard": "0"}, params=SimpleNamespace(n_images=1))
    start_shard(job)
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    finish_shard(job)
    return manifest


# finding 1: the manifest says what the shard holds, not only how big its files are
def test_the_manifest_lists_the_sha256_of_every_file_beside_its_size(tmp_path):
    contents = {"0/drop-0.png": b"png bytes", "0/duals.json": b"{}"}
    record = read_json(finished_shard(tmp_path / "shard", contents))
    assert record["files"] == {"0/drop-0.png": 9, "0/duals.json": 2}  # unchanged format
    assert record["sha256"] == {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


# finding 1: a same-size rewrite (another inpaint.radius) changes the digest training keys by
def test_the_manifests_digest_follows_file_content_not_sizes(tmp_path):
    from dualclip.train.trainer import manifests_digest

    before = finished_shard(tmp_path / "a", {"0/drop-0.png": b"radius 3", "0.json": b"{}"})
    after = finished_shard(tmp_path / "b", {"0/drop-0.png": b"radius 4", "0.json": b"{}"})
    assert read_json(before)["files"] == read_json(after)["files"]
    assert manifests_digest({"inpaint": [str(before)]}) != manifests_digest({"inpaint": [str(after)]})
    # a manifest written before manifests listed checksums: its files are hashed instead
    old_style = read_json(after)
    del old_style["sha256"]
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(old_style))
    assert manifests_digest({"inpaint": [str(after)]}) == manifests_digest({"inpaint": [str(tmp_path / "b" / "manifest.json")]})
    assert manifests_digest({"inpaint": [str(before)]}) != manifests_digest({"inpaint": [str(after)]})


@pytest.fixture
def own_world(tmp_path):
    """Training data whose image files this test may change."""
    from helpers import world_train_data

    return world_train_data(tmp_path / "world", seed=3)


def tiny_config(steps):
    from helpers import tiny_config as config

    return config(steps)


def final_weights(out_dir: Path) -> dict:
    return torch.load(out_dir / "model.pt", map_location="cpu", weights_only=True)["model"]


# finding 1: same paths and texts, other pixels: the checkpoint is not resumed, and it says why
def test_a_checkpoint_of_other_image_content_is_not_resumed(own_world, tmp_path, capsys):
    torch.set_num_threads(1)
    config = tiny_config(5)
    out_dir = tmp_path / "run"
    assert train(config, "baseline", 0, own_world, out_dir, stop_after_steps=3) == {"stopped_at": 3}
    assert (out_dir / "checkpoint.pt").exists()
    # the upstream stage reran with another parameter: one image has other pixels
    changed = own_world.image_files[0]
    write_png(changed, np.ascontiguousarray(read_rgb(changed)[::-1]))
    capsys.readouterr()
    summary = train(config, "baseline", 0, own_world, out_dir)
    log = capsys.readouterr().out
    assert "ignoring" in log and "file content" in log and "training from step 0" in log and "resumed from" not in log
    assert summary["resumed_from_step"] == 0 and read_json(out_dir / "summary.json")["resumed_from_step"] == 0
    # the weights are those of a clean run on the new images
    train(config, "baseline", 0, own_world, tmp_path / "clean")
    clean, rerun = final_weights(tmp_path / "clean"), final_weights(out_dir)
    assert all(torch.equal(clean[key], rerun[key]) for key in clean)


# finding 1: the digest that run() passes from the manifests decides as well
def test_a_checkpoint_of_another_data_digest_is_not_resumed(world_data, tmp_path, capsys):
    config = tiny_config(4)
    train(config, "baseline", 0, world_data, tmp_path, stop_after_steps=3, data_digest="inputs with radius 3")
    capsys.readouterr()
    summary = train(config, "baseline", 0, world_data, tmp_path, data_digest="inputs with radius 4")
    assert summary["resumed_from_step"] == 0 and "file content" in capsys.readouterr().out


# findings 1 and 7: an unchanged run resumes from a checkpoint that loads as plain data,
# says where it resumed, and ends with the weights of an uninterrupted run
def test_a_resumed_run_records_its_step_and_its_checkpoint_loads_weights_only(world_data, tmp_path):
    torch.set_num_threads(1)
    config = tiny_config(5)
    out_dir = tmp_path / "run"
    train(config, "baseline", 0, world_data, out_dir, stop_after_steps=3)
    checkpoint = torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 2 and set(checkpoint["rng"]) == {"torch", "numpy", "python"}
    summary = train(config, "baseline", 0, world_data, out_dir)
    assert summary["resumed_from_step"] == 2 and read_json(out_dir / "summary.json")["resumed_from_step"] == 2
    straight = train(config, "baseline", 0, world_data, tmp_path / "straight")
    assert straight["resumed_from_step"] == 0
    a, b = final_weights(tmp_path / "straight"), final_weights(out_dir)
    assert all(torch.equal(a[key], b[key]) for key in a)


# finding 7: the RNG states survive the list form exactly (a cached Gaussian included)
def test_rng_states_round_trip_through_plain_lists():
    import random

    from dualclip.train.trainer import rng_state, set_rng_state

    np.random.seed(1), random.seed(2), torch.manual_seed(3)
    np.random.normal(), random.gauss(0, 1)  # both now hold a cached second Gaussian
    state = rng_state()
    expected = (np.random.normal(size=3).tolist(), random.gauss(0, 1), random.random(), torch.rand(3))
    np.random.seed(9), random.seed(9), torch.manual_seed(9)
    set_rng_state(state)
    drawn = (np.random.normal(size=3).tolist(), random.gauss(0, 1), random.random(), torch.rand(3))
    assert drawn[:3] == expected[:3] and torch.equal(drawn[3], expected[3])


class RunsCode:
    """Unpickling this creates ``marker``: what a hostile .pt could do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# finding 7: a checkpoint or model file that carries code is refused, and the code never runs
def test_a_pickled_object_in_a_checkpoint_or_model_file_is_never_executed(world_data, tmp_path, capsys):
    from dualclip.train.models import load_checkpoint_model

    marker = tmp_path / "code ran"
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    torch.save({"step": 2, "fingerprint": "x", "payload": RunsCode(marker)}, out_dir / "checkpoint.pt")
    summary = train(tiny_config(2), "baseline", 0, world_data, out_dir)
    assert not marker.exists()
    assert "weights_only" in capsys.readouterr().out and summary["resumed_from_step"] == 0
    torch.save({"config": {"model": {"name": "dualclip-tiny"}}, "payload": RunsCode(marker)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt.*weights_only.*delete it and rerun its train job"):
        load_checkpoint_model(tmp_path / "model.pt")
    assert not marker.exists()


# finding 6: every writer leaves files with the mode the umask gives (mkstemp's 0600 did not)
@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_files_are_written_with_the_process_umask(tmp_path, umask):
    script = """
import sys
from pathlib import Path
import numpy as np
from dualclip.fetch import _write_lock
from dualclip.io import copy_file, write_bytes, write_json, write_png, write_text
from dualclip.preflight import hold_results_lock
from dualclip.train.trainer import _save, write_log
out = Path(sys.argv[1])
write_json(out / "a.json", {"x": 1})
write_text(out / "scores.csv", "a,b\\n")
write_png(out / "a.png", np.zeros((4, 4, 3), np.uint8))
write_bytes(out / "figure.png", b"figure")
copy_file(out / "a.json", out / "copied.json")
_save(out / "checkpoint.pt", {"step": 1})
write_log(out / "train_log.csv", [{"step": 1, "loss": 0.5}])
_write_lock(out / "sha256.lock.json", {"url": {"sha256": "0" * 64}})
held = hold_results_lock(out)
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=lambda: os.umask(umask), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in tmp_path.iterdir()}
    written = ("a.json", "scores.csv", "a.png", "figure.png", "copied.json", "checkpoint.pt", "train_log.csv",
               "sha256.lock.json", ".dualclip.lock")
    assert modes == {name: oct(0o666 & ~umask) for name in written}


# finding 6: two writers of one file (two working directories sharing results_dir) never
# share a temporary name: another process's temporary file is left alone
def test_checkpoint_and_log_writes_leave_another_writers_temporary_file_alone(tmp_path):
    from dualclip.train.trainer import _save, write_log

    others = {name: tmp_path / f".{name}.tmp" for name in ("checkpoint.pt", "train_log.csv")}
    for other in others.values():
        other.write_bytes(b"another process is writing this")
    _save(tmp_path / "checkpoint.pt", {"step": 7})
    write_log(tmp_path / "train_log.csv", [{"step": 7}])
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True) == {"step": 7}
    assert (tmp_path / "train_log.csv").read_text().splitlines() == ["step", "7"]
    for other in others.values():
        assert other.read_bytes() == b"another process is writing this"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["checkpoint.pt", "train_log.csv", *(p.name for p in others.values())])


# finding 1, end to end: train killed (-9, whole process tree) after a checkpoint, an upstream
# parameter changed (inpaint.radius), rerun: the run starts afresh and says so
@pytest.mark.slow
def test_the_workflow_does_not_resume_training_on_changed_duals(tmp_path):
    from helpers import CONFIGS, SNAKEMAKE, snakemake

    target = "results/train/ours/n24/seed0/model.pt"
    run_dir = tmp_path / "results" / "train" / "ours" / "n24" / "seed0"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    output = tmp_path / "first_run.out"  # a file, not a pipe: a full pipe would stall snakemake
    with open(output, "w") as handle:
        first = subprocess.Popen([*SNAKEMAKE, "--configfile", *CONFIGS, "--directory", str(tmp_path), target],
                                 stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 300
    while not (run_dir / "checkpoint.pt").exists():
        assert first.poll() is None, f"the workflow ended before a checkpoint: {output.read_text()[-3000:]}"
        assert time.time() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # snakemake and its jobs: the whole process group
    first.wait()
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "model.pt").exists()
    shard = tmp_path / "results" / "inpaint" / "train" / "0"
    duals_before = {path.relative_to(shard): path.read_bytes() for path in shard.rglob("drop-*.png")}

    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, target, "--rerun-incomplete", extra_config={"inpaint": {"radius": 4}})
    duals_after = {path.relative_to(shard): path.read_bytes() for path in shard.rglob("drop-*.png")}
    # the premise: the same dual files with other pixels
    assert duals_after.keys() == duals_before.keys() and duals_after != duals_before
    assert read_json(run_dir / "summary.json")["resumed_from_step"] == 0
    log = (tmp_path / "results" / "logs" / "train" / "ours" / "n24" / "seed0.log").read_text()
    assert "ignoring" in log and "file content" in log and "resumed from" not in log
