"""The tiny workflow on a SLURM cluster (issue 6): same results as a local run.

Runs ``tests/config_tiny.yaml`` twice, each in its own temporary working directory
(``snakemake -s <repo>/Snakefile --directory <tmp>``): once locally with ``--cores 2``
and once through ``--profile profiles/slurm-test``. The two runs go at the same time,
because the SLURM run spends much of its time waiting between status polls. Then:

- the SLURM run exits 0, every job in it was a SLURM job (only ``all`` and the
  download rules declared local may run in the main process), each submission has its
  log in ``.snakemake/slurm_logs``, the shard rules were bundled into group jobs, and
  squeue reports every job COMPLETED;
- both runs wrote the same ``results/`` file list;
- the outputs of the per-shard stages (``data/``, ``parse/``, ``detect/``,
  ``inpaint/``, ``rewrite/``, ``filter/``) are byte-identical;
- so is everything after them, apart from the fields that record the run itself:
  ``code_version`` (the git commit, which moves while people commit) and
  ``train_seconds_this_process``. Tables, JSON and the model weights are compared
  without those fields, ``report.html`` is not compared, and ``logs/`` and
  ``benchmarks/`` only have to exist. Training on CPU was found to be bit-for-bit
  reproducible here (same weights, same scores), so the comparison is exact.

Needs a running cluster (as root: ``tests/slurm/start_slurm.sh``, then
``tests/slurm/stop_slurm.sh``). The test skips itself when ``sinfo`` is not on PATH or
no node is idle/mixed. It takes 5-7 minutes on 2 cores: ``pytest -m slurm tests/test_slurm.py``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
CONFIGS = [REPO / "config" / "config.yaml", REPO / "tests" / "config_tiny.yaml"]
PROFILE = REPO / "profiles" / "slurm-test"
STATE_DIR = Path(os.environ.get("DUALCLIP_SLURM_DIR", "/tmp/dualclip-slurm"))
RUN_TIMEOUT_S = int(os.environ.get("DUALCLIP_SLURM_TEST_TIMEOUT", "1500"))

# Rules allowed to run in the main Snakemake process instead of as SLURM jobs:
# `all` and the rules declared `localrule: True` (downloads need the internet).
LOCAL_RULES = {"all", "download_image_archive", "download_benchmark"}
# results/<dir> written by the per-shard stages data, parse, detect, inpaint,
# rewrite and filter (when the tiny config runs it).
SHARD_STAGE_DIRS = {"data", "parse", "detect", "inpaint", "rewrite", "filter"}
# Only their existence is compared: timings and log text.
UNCOMPARED_DIRS = {"logs", "benchmarks"}
# the report embeds run times and paths; the lock names the process that held it
UNCOMPARED_FILES = {"report/report.html", ".dualclip.lock"}
# Fields that describe the run rather than the result.
RUN_FIELDS = {"code_version", "train_seconds_this_process"}


# --------------------------------------------------------------------------- #
# cluster detection
# --------------------------------------------------------------------------- #
def _env() -> dict[str, str]:
    env = os.environ.copy()
    # start_slurm.sh links /etc/slurm/slurm.conf to its config when it can;
    # otherwise point the SLURM clients at it.
    if (
        "SLURM_CONF" not in env
        and not Path("/etc/slurm/slurm.conf").exists()
        and (STATE_DIR / "slurm.conf").exists()
    ):
        env["SLURM_CONF"] = str(STATE_DIR / "slurm.conf")
    # SLURM jobs inherit this environment: this interpreter's python/snakemake
    # first on PATH, this checkout's dualclip package, no network.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE"):
        env.setdefault(var, "1")
    return env


def _cluster_skip_reason() -> str | None:
    hint = "start one as root with tests/slurm/start_slurm.sh"
    if shutil.which("sinfo") is None:
        return f"SLURM not available: `sinfo` is not on PATH ({hint})"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            capture_output=True, text=True, timeout=30, env=_env(),
        )
    except subprocess.TimeoutExpired:
        return f"SLURM cluster not up: `sinfo` timed out ({hint})"
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"SLURM cluster not up: `sinfo` failed: {msg} ({hint})"
    states = {s.rstrip("*~#!%$@^-+") for s in proc.stdout.split()}  # drop state flags
    if not states & {"idle", "mixed"}:
        return f"SLURM cluster has no idle or mixed node (states: {sorted(states)}; {hint})"
    return None


@pytest.fixture(scope="module", autouse=True)
def _require_cluster():
    reason = _cluster_skip_reason()
    if reason:
        pytest.skip(reason)


# --------------------------------------------------------------------------- #
# the two runs
# --------------------------------------------------------------------------- #
def _start(workdir: Path, extra: list[str], logname: str):
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir),
        "--configfile", *map(str, CONFIGS),
        "--nocolor",
        *extra,
    ]
    log = workdir / logname
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=workdir, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def _finish(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # snakemake cancels its SLURM jobs on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        rc = -1
    text = log.read_text(errors="replace")
    if rc == -1:
        text += f"\n[test_slurm] killed after {RUN_TIMEOUT_S}s\n"
    return rc, text


def _tail(text: str, n: int = 80) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("a SLURM cluster is up but snakemake-executor-plugin-slurm is not installed")
    slurm_dir, local_dir = tmp_path_factory.mktemp("slurm"), tmp_path_factory.mktemp("local")
    slurm = _start(slurm_dir, ["--profile", str(PROFILE)], "snakemake_slurm.log")
    local = _start(local_dir, ["--cores", "2"], "snakemake_local.log")
    local_rc, local_log = _finish(*local)
    slurm_rc, slurm_log = _finish(*slurm)
    return {
        "local": (local_dir, local_rc, local_log),
        "slurm": (slurm_dir, slurm_rc, slurm_log),
    }


@pytest.fixture(scope="module")
def local_run(runs):
    workdir, rc, log = runs["local"]
    assert rc == 0, f"local reference run failed (rc={rc}):\n{_tail(log)}"
    return workdir, log


@pytest.fixture(scope="module")
def slurm_run(runs):
    workdir, rc, log = runs["slurm"]
    assert rc == 0, f"snakemake --profile profiles/slurm-test failed (rc={rc}):\n{_tail(log)}"
    return workdir, log


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
_RULE_RE = re.compile(r"^\s*(local)?rule (\w+):\s*$", re.M)
_SUBMIT_RE = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)")


def _executed_rules(log: str) -> tuple[list[str], list[str]]:
    """(rules of jobs handed to the executor, rules run in the main process)."""
    remote, local = [], []
    for m in _RULE_RE.finditer(log):
        (local if m.group(1) else remote).append(m.group(2))
    return remote, local


def _results_files(workdir: Path) -> set[str]:
    root = workdir / "results"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _top(rel: str) -> str:
    return rel.split("/", 1)[0]


def _compared(files: set[str]) -> set[str]:
    return {f for f in files if _top(f) not in UNCOMPARED_DIRS and f not in UNCOMPARED_FILES}


def _table(path: Path) -> list[list[str]]:
    """A CSV/TSV without its run-describing columns."""
    text = path.read_text()
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ","))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if name not in RUN_FIELDS]
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def _strip(value):
    """A JSON/checkpoint value without its run-describing fields."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in RUN_FIELDS}
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    return value


def _same_checkpoint(a: Path, b: Path) -> bool:
    import numpy as np
    import torch

    def same(x, y) -> bool:
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(same, x, y))
        if torch.is_tensor(x):
            return torch.is_tensor(y) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, np.ndarray):
            return isinstance(y, np.ndarray) and np.array_equal(x, y)
        return x == y

    load = lambda p: _strip(torch.load(p, map_location="cpu", weights_only=False))  # noqa: E731
    return same(load(a), load(b))


def _same_result(a: Path, b: Path) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    if a.suffix in {".csv", ".tsv"}:
        return _table(a) == _table(b)
    if a.suffix == ".json":
        return _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text()))
    if a.suffix == ".pt":
        return _same_checkpoint(a, b)
    return False


# --------------------------------------------------------------------------- #
# tests
# --------------------------------------------------------------------------- #
def test_slurm_run_succeeds(slurm_run):
    workdir, log = slurm_run
    assert (workdir / "results" / "report" / "report.html").is_file()


def test_every_job_ran_as_slurm_job(slurm_run, local_run):
    workdir, log = slurm_run
    remote, local = _executed_rules(log)
    assert remote, "no job was handed to the SLURM executor"
    assert set(local) <= LOCAL_RULES, f"jobs ran outside SLURM: {sorted(set(local) - LOCAL_RULES)}"
    # the same jobs as the local reference run (where every job is a localrule)
    ref_remote, ref_local = _executed_rules(local_run[1])
    assert sorted(remote + local) == sorted(ref_remote + ref_local)

    # one submission per job or group job, each with its log file
    submissions = _SUBMIT_RE.findall(log)
    assert submissions, "no 'submitted with SLURM jobid' lines in the Snakemake log"
    logdir = workdir / ".snakemake" / "slurm_logs"
    for jobid, logfile in submissions:
        path = Path(logfile)
        assert path.is_file(), f"missing SLURM log of job {jobid}: {path}"
        assert path.is_relative_to(logdir), path
    # per-rule log folders: rule_<rule>, or group_<group>_<member rules joined by _>
    # (Snakemake lists at most 5 member rules in a group's name, then "...")
    folders = {p.name for p in logdir.iterdir() if p.is_dir()}
    for rule in set(remote):
        assert f"rule_{rule}" in folders or any(
            f.startswith("group_") and (f"_{rule}_" in f + "_" or f.endswith("_..."))
            for f in folders
        ), f"no SLURM log folder for rule {rule}: {sorted(folders)}"
    # the shard rules were bundled: a group job, fewer submissions than jobs
    assert any(f.startswith("group_shards_") for f in folders), sorted(folders)
    assert len(submissions) < len(remote)

    # SLURM says they all completed (finished jobs stay in squeue for MinJobAge=300 s)
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    proc = subprocess.run(
        ["squeue", "-h", "--states=all", "--name", run_id, "-o", "%i|%T"],
        capture_output=True, text=True, env=_env(), timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    states = dict(line.split("|", 1) for line in proc.stdout.split())
    ids = {jobid for jobid, _ in submissions}
    assert ids <= states.keys(), f"jobs unknown to squeue: {sorted(ids - states.keys())}"
    assert {states[i] for i in ids} == {"COMPLETED"}, {i: states[i] for i in ids}


def test_same_results_files(slurm_run, local_run):
    ref, got = _results_files(local_run[0]), _results_files(slurm_run[0])
    assert ref, "the local run wrote nothing under results/"
    assert got == ref, f"only local: {sorted(ref - got)[:20]}\nonly SLURM: {sorted(got - ref)[:20]}"


def test_shard_stage_outputs_byte_identical(slurm_run, local_run):
    ref_dir, got_dir = local_run[0] / "results", slurm_run[0] / "results"
    files = sorted(
        f for f in _compared(_results_files(local_run[0]) & _results_files(slurm_run[0]))
        if _top(f) in SHARD_STAGE_DIRS
    )
    missing = {"data", "parse", "detect", "inpaint", "rewrite"} - {_top(f) for f in files}
    assert not missing, f"no outputs of the shard stages {sorted(missing)}"
    differ = [f for f in files if (ref_dir / f).read_bytes() != (got_dir / f).read_bytes()]
    assert not differ, f"{len(differ)} of {len(files)} files differ: {differ[:20]}"


def test_training_eval_report_outputs_identical(slurm_run, local_run):
    ref_dir, got_dir = local_run[0] / "results", slurm_run[0] / "results"
    files = sorted(
        f for f in _compared(_results_files(local_run[0]) & _results_files(slurm_run[0]))
        if _top(f) not in SHARD_STAGE_DIRS
    )
    for needed in ("train", "eval", "report"):
        assert any(_top(f) == needed for f in files), f"no results/{needed}/ outputs"
    differ = [f for f in files if not _same_result(ref_dir / f, got_dir / f)]
    assert not differ, (
        f"{len(differ)} of {len(files)} files differ (beyond {sorted(RUN_FIELDS)}): {differ[:20]}"
    )
