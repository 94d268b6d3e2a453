"""The real-benchmark stage of the workflow: prepare annotations/images, then evaluate a run.

Two functions back the rules of ``rules/real_benchmarks.smk`` (the scripts stay thin):

* :func:`prepare` (rule ``download_benchmark``) puts one benchmark's annotation files
  under ``<out_dir>/annotations/`` and writes ``<out_dir>/ready.json``. With
  ``annotations: <local folder or file>`` in the benchmark's config section nothing is
  downloaded: the files are checked (SHA-256 against the pinned checksums of
  ``data/sha256.json`` where known) and copied. Otherwise they are fetched from the
  official URLs (``data/sources.json``) with :func:`dualclip.fetch.download`: pinned
  checksum where known, else the checksum is recorded in ``<out_dir>/sha256.lock.json``
  on the first download (once the file parsed as JSON: an HTML page served in its place
  is deleted, never recorded) and verified on every later one. ``ready.json`` lists the files
  with their checksums and, per piece, which image folder serves it and how many of its
  images are there; a piece without images is listed as skipped with the reason.
* :func:`prepare_archive` (rule ``download_image_archive``) downloads and safely extracts
  one image archive; only requested when a benchmark sets ``download_images: true`` and
  names no folder for that image source. Images are never downloaded otherwise.
* :func:`evaluate` (rule ``eval_benchmark``) loads a trained run's ``model.pt``, the
  items of ``ready.json`` (a missing image skips its item, a missing folder its piece;
  both are written to the skips CSV), scores them with the official rules, adds the text-only
  ``blind_*`` and ``length_*`` baselines (:func:`dualclip.eval.benchmarks.scoring.summarise_baselines`)
  and writes the long-format CSV ``method, n_train, seed, benchmark, suite, metric, value,
  n_items, code_version`` (as the synthetic evaluation does) plus ``n_items_total`` and
  ``incomplete`` (:func:`flag_incomplete`), and a per-item CSV.

Config section (``config["benchmarks"][<name>]``), every key optional:
``annotations`` (local folder, or the file itself for single-file benchmarks; null:
download), ``images`` (one folder, or a dict keyed by image source or, for VALSE, piece
name), ``download_images`` (false), ``verify_checksums`` (true; false accepts excerpts or
edited copies of pinned files, whose checksums are then only recorded), ``pieces``
(SugarCrepe / SugarCrepe++ subsets, VALSE pieces to evaluate; default all). The workflow's
input functions (rules/common.smk) call :func:`configured`, :func:`section`,
:func:`archives_needed` and :func:`needed_files` rather than repeating this logic; the
benchmarks themselves are the registry's (dualclip/eval/benchmarks/registry.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dualclip.fetch import (
    ChecksumMismatchError,
    FetchError,
    InvalidDownloadError,
    download,
    download_and_extract,
    sha256_file,
)
from dualclip.io import copy_file, read_json

from .registry import REGISTRY, data_json, get_benchmark

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

BENCHMARK_NAMES = tuple(REGISTRY)
DEFAULTS = {"annotations": None, "images": None, "download_images": False,
            "verify_checksums": True, "pieces": None}
SCORE_COLUMNS = ["method", "n_train", "seed", "benchmark", "suite", "metric", "value", "n_items",
                 "code_version", "n_items_total", "incomplete"]
LOCK_NAME = "sha256.lock.json"
#: Benchmarks with one annotation file per piece, whose `pieces` may be chosen.
PIECE_BENCHMARKS = tuple(name for name, benchmark in REGISTRY.items() if benchmark.has_pieces)
GDRIVE_PREFIX = "gdrive:"


# --------------------------------------------------------------------------- metadata

def sources() -> dict:
    """``data/sources.json``: annotation URLs, image sources and image archives."""
    return data_json("sources.json")


def pinned_checksums() -> dict:
    """``data/sha256.json``: pinned SHA-256 of the SugarCrepe, SugarCrepe++ and VALSE files (+ commits)."""
    return data_json("sha256.json")


def annotation_urls(benchmark: str) -> dict[str, str]:
    """Official annotation file name -> URL (``gdrive:<id>`` for Google Drive)."""
    return get_benchmark(benchmark).files


def pinned_sha256(benchmark: str, filename: str) -> str | None:
    entry = pinned_checksums().get(benchmark)
    return entry["files"].get(filename) if isinstance(entry, dict) else None


def resolve_url(url: str) -> str:
    """``gdrive:<id>`` -> a direct-download URL that skips Drive's virus-scan page."""
    if url.startswith(GDRIVE_PREFIX):
        file_id = url[len(GDRIVE_PREFIX):]
        return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"
    return url


def manual_url(url: str) -> str:
    if url.startswith(GDRIVE_PREFIX):
        return f"https://drive.google.com/uc?id={url[len(GDRIVE_PREFIX):]}"
    return url


def section(config: dict, benchmark: str) -> dict:
    """The benchmark's config section with defaults filled in."""
    if benchmark not in BENCHMARK_NAMES:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {list(BENCHMARK_NAMES)}")
    benchmarks = {name: value for name, value in (config.get("benchmarks") or {}).items() if value is not False}
    if benchmark not in benchmarks:
        raise ValueError(f"benchmark {benchmark!r} is not configured: add it to the config's "
                         f"benchmarks: section (see config/benchmarks_example.yaml)")
    sec = {**DEFAULTS, **(benchmarks[benchmark] if isinstance(benchmarks[benchmark], dict) else {})}
    if isinstance(sec["images"], dict):
        entry = sources()["benchmarks"][benchmark]
        unknown = [key for key in sec["images"] if key not in entry["images"] and key not in entry["pieces"]]
        if unknown:
            raise ValueError(f"benchmarks.{benchmark}.images: unknown key(s) {unknown}; use image "
                             f"sources {list(entry['images'])}" + (f" or pieces {list(entry['pieces'])}"
                                                                   if benchmark == "valse" else ""))
    return sec


def configured(config: dict) -> dict[str, dict]:
    """Every configured benchmark -> its section with defaults (``<name>: false`` leaves one out)."""
    named = config.get("benchmarks") or {}
    unknown = [name for name in named if name not in BENCHMARK_NAMES]
    if unknown:
        raise ValueError(f"config benchmarks: unknown benchmark(s) {unknown}; choose from {list(BENCHMARK_NAMES)}")
    return {name: section(config, name) for name, value in named.items() if value is not False}


def pieces(benchmark: str, sec: dict) -> list[tuple[str, str]]:
    """(piece, image source) of the benchmark; a piece is the unit that is skipped whole
    (a SugarCrepe or SugarCrepe++ subset, a VALSE piece, the whole set for the others)."""
    known = sources()["benchmarks"][benchmark]["pieces"]
    wanted = sec.get("pieces") or list(known)
    if sec.get("pieces") and benchmark not in PIECE_BENCHMARKS:
        raise ValueError(f"benchmarks.{benchmark}.pieces: only {', '.join(PIECE_BENCHMARKS)} have pieces")
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ValueError(f"benchmarks.{benchmark}.pieces: unknown {unknown}; choose from {list(known)}")
    return [(p, known[p]) for p in wanted]


def needed_files(benchmark: str, sec: dict) -> list[str]:
    """The annotation files the configured pieces need."""
    files = list(annotation_urls(benchmark))
    if benchmark in PIECE_BENCHMARKS:
        return [f"{piece}.json" for piece, _ in pieces(benchmark, sec)]
    return files


def images_root(config: dict) -> Path:
    return Path(config.get("results_dir", "results")) / "benchmark_data" / "images"


def image_folder(benchmark: str, sec: dict, piece: str, source: str, root: Path) -> tuple[Path | None, str]:
    """(folder or None, where it comes from or why there is none)."""
    info = sources()["benchmarks"][benchmark]["images"][source]
    images = sec.get("images")
    configured = None
    if isinstance(images, (str, os.PathLike)):
        configured = images
    elif isinstance(images, dict):
        configured = images.get(piece) or images.get(source)
    if configured:
        return Path(configured), "config"
    if sec.get("download_images"):
        if info.get("archive"):
            return root / info["archive"] / info.get("subdir", ""), f"archive {info['archive']}"
        return None, (f"no image folder is configured for image source {source!r} and it has "
                      f"no public archive to download; download {info['hint']} yourself and set "
                      f"benchmarks.{benchmark}.images.{source}")
    return None, (f"no image folder is configured for image source {source!r} "
                  f"(benchmarks.{benchmark}.images; or download_images: true where an archive "
                  f"exists); images: {info['hint']}")


def archives_needed(benchmark: str, sec: dict) -> list[str]:
    """Image archives that ``download_images: true`` asks for (sources without a folder)."""
    if not sec.get("download_images"):
        return []
    out = []
    for piece, source in pieces(benchmark, sec):
        info = sources()["benchmarks"][benchmark]["images"][source]
        _, origin = image_folder(benchmark, sec, piece, source, Path("."))
        if origin.startswith("archive") and info["archive"] not in out:
            out.append(info["archive"])
    return out


# --------------------------------------------------------------------------- annotations

def _json_problem(path: Path) -> str | None:
    """None if ``path`` is JSON, else what it is instead."""
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        head = path.read_bytes()[:200].lstrip().lower()
        if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
            return "an HTML page (Google Drive's confirmation or quota page)"
        return f"not valid JSON ({e})"


def _json_check(url: str):
    """The validation of a downloaded annotation: it must be JSON, as Google Drive answers
    quota or confirmation pages as HTML with status 200. ``download`` deletes a file that
    fails it, together with its lock entry, and records no checksum for it."""
    def check(path: Path) -> None:
        problem = _json_problem(path)
        if problem is not None:
            gdown = f" or `gdown {url[len(GDRIVE_PREFIX):]}`" if url.startswith(GDRIVE_PREFIX) else ""
            raise FetchError(
                f"it is {problem}. Download it by hand from {manual_url(url)} (in a browser"
                f"{gdown}), put it in a folder under the name {path.name} and set that folder "
                f"as this benchmark's `annotations` in the config")
    return check


def _local_source(benchmark: str, sec: dict, files: list[str]) -> dict[str, Path]:
    """Official file name -> local file, for ``annotations: <folder or file>``."""
    local = Path(sec["annotations"])
    if local.is_file():
        if len(files) != 1:
            raise ValueError(f"benchmarks.{benchmark}.annotations is the file {local}, but "
                             f"{benchmark} needs the files {files}: give their folder instead")
        return {files[0]: local}
    if not local.is_dir():
        raise FileNotFoundError(f"benchmarks.{benchmark}.annotations: {local} does not exist; "
                                f"give the folder with {files} (or null to download them)")
    missing = [name for name in files if not (local / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"benchmarks.{benchmark}.annotations: {local} lacks {missing}; it must hold the "
            f"official files {files}" + (" (or set benchmarks.{0}.pieces to the pieces you "
                                         "have)".format(benchmark) if benchmark in PIECE_BENCHMARKS else ""))
    return {name: local / name for name in files}


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and dest.stat().st_size == src.stat().st_size and sha256_file(dest) == sha256_file(src):
        return
    copy_file(src, dest)


def fetch_annotations(benchmark: str, sec: dict, out_dir: Path) -> list[dict]:
    """Put the needed annotation files in ``out_dir/annotations``; one record per file."""
    files = needed_files(benchmark, sec)
    urls = annotation_urls(benchmark)
    ann_dir = out_dir / "annotations"
    lock_file = out_dir / LOCK_NAME
    verify = bool(sec.get("verify_checksums", True))
    records = []
    local = _local_source(benchmark, sec, files) if sec.get("annotations") else None
    for name in files:
        pin = pinned_sha256(benchmark, name)
        dest = ann_dir / name
        if local is not None:
            src = local[name]
            digest = sha256_file(src)
            if pin and digest != pin:
                if verify:
                    commit = pinned_checksums()[benchmark]["commit"]
                    raise ChecksumMismatchError(
                        f"{benchmark} annotation file {src} has sha256 {digest}, but the official "
                        f"file ({pinned_checksums()[benchmark]['repository']} @ {commit}) has {pin}. "
                        f"Replace it with the official file, or set benchmarks.{benchmark}."
                        f"verify_checksums: false to use this copy (an excerpt or an edited file) "
                        f"on purpose")
                check = "differs from the pinned checksum (verify_checksums: false)"
            else:
                check = "pinned" if pin else "recorded"
            problem = _json_problem(src)
            if problem is not None:
                raise ValueError(f"annotation file {src} is {problem}; it is probably truncated "
                                 f"or corrupted: replace it with the official file")
            _copy(src, dest)
            origin = str(src.resolve())
        else:
            url = urls[name]
            use_pin = pin if verify else None
            had_lock = lock_file.exists() and resolve_url(url) in read_json(lock_file)
            download(resolve_url(url), dest, sha256=use_pin, lock_file=None if use_pin else lock_file,
                     validate=_json_check(url))
            digest = sha256_file(dest)
            if use_pin:
                check = "pinned"
            elif pin and digest != pin:
                check = "differs from the pinned checksum (verify_checksums: false)"
            else:
                check = "lock file" if had_lock else f"recorded in {LOCK_NAME}"
            origin = resolve_url(url)
        records.append({"file": name, "path": str(dest), "sha256": digest, "size": dest.stat().st_size,
                        "source": origin, "pinned_sha256": pin, "checksum": check})
        log.info("%s: %s sha256 %s (%s)", benchmark, name, digest, check)
    return records


# --------------------------------------------------------------------------- images

def piece_images(benchmark: str, ann_dir: Path, piece: str) -> list[str]:
    """Image file names (relative to the piece's folder) of the items the scorer uses."""
    from .valse import is_valid

    if benchmark == "sugarcrepe":
        return [r["filename"] for r in read_json(ann_dir / f"{piece}.json").values()]
    if benchmark == "sugarcrepe_pp":
        return [r["filename"] for r in read_json(ann_dir / f"{piece}.json")]
    if benchmark == "valse":
        return [r["image_file"] for r in read_json(ann_dir / f"{piece}.json").values() if is_valid(r)]
    name = next(iter(annotation_urls(benchmark)))
    data = read_json(ann_dir / name)
    if benchmark in ("vg_relation", "vg_attribution"):
        return [r["image_path"] for r in data]
    per_item = []
    for rec in data:
        caps = rec["caption"]
        n = 1 if benchmark == "coco_retrieval" else (1 if isinstance(caps, str) else len(caps))
        per_item += [rec["image"]] * n
    return per_item


def extra_image_folders(benchmark: str, sec: dict, piece: str, root: Path) -> list[Path]:
    """Further folders of a piece whose images come from several sources (VALSE
    coreference-standard: COCO train2014 and val2014), where they are configured."""
    from .valse import EXTRA_IMAGE_SOURCES

    if benchmark != "valse":
        return []
    folders = [image_folder(benchmark, sec, piece, source, root)[0]
               for source in EXTRA_IMAGE_SOURCES.get(piece, ())]
    return [f for f in folders if f is not None]


def check_images(benchmark: str, sec: dict, ann_dir: Path, root: Path) -> list[dict]:
    """Per piece: image folder(s), item/image counts and status (ready, partial, skipped)."""
    from .items import folder_problem

    out = []
    for piece, source in pieces(benchmark, sec):
        names = piece_images(benchmark, ann_dir, piece)
        folder, origin = image_folder(benchmark, sec, piece, source, root)
        candidates = ([folder] if folder else []) + extra_image_folders(benchmark, sec, piece, root)
        usable = [f for f in candidates if folder_problem(f) is None]
        rec = {"piece": piece, "image_source": source, "n_items": len(names),
               "n_images": len(set(names)), "folder": str(usable[0] if usable else folder) if candidates else None,
               "folders": [str(f) for f in usable],
               "folder_from": origin if folder else None, "n_images_found": 0}
        hint = sources()["benchmarks"][benchmark]["images"][source]["hint"]
        problem = origin if not candidates else (None if usable else folder_problem(candidates[0]))
        if candidates and problem is not None:
            problem = f"{problem}; provide {hint} there (benchmarks.{benchmark}.images)"
        if problem is None:
            found = sum(any((f / n).is_file() for f in usable) for n in set(names))
            rec["n_images_found"] = found
            if found == 0 and names:
                problem = (f"none of the {len(set(names))} images were found in "
                           f"{' or '.join(map(str, usable))} (e.g. {sorted(set(names))[0]}); "
                           f"point the image folder at {hint}")
        if problem is not None:
            rec.update(status="skipped", reason=problem)
            log.warning("%s/%s skipped: %s", benchmark, piece, problem)
        elif rec["n_images_found"] < rec["n_images"]:
            missing = rec["n_images"] - rec["n_images_found"]
            rec.update(status="partial", reason=f"{missing} of {rec['n_images']} images missing in "
                                                f"{' and '.join(rec['folders'])}; their items are skipped")
        else:
            rec.update(status="ready", reason=None)
        out.append(rec)
    return out


# --------------------------------------------------------------------------- prepare

def prepare(benchmark: str, config: dict, out_dir: str | os.PathLike) -> dict:
    """Annotation files and image check of one benchmark; writes ``out_dir/ready.json``."""
    from dualclip.io import code_version, write_json

    out_dir = Path(out_dir)
    sec = section(config, benchmark)
    root = images_root(config)
    files = fetch_annotations(benchmark, sec, out_dir)
    ann_dir = out_dir / "annotations"
    checked = check_images(benchmark, sec, ann_dir, root)
    ready = {
        "benchmark": benchmark,
        "annotations": str(ann_dir),
        "annotations_from": str(Path(sec["annotations"]).resolve()) if sec.get("annotations") else "download",
        "files": files,
        "pieces": checked,
        "skipped": [{"piece": p["piece"], "reason": p["reason"]} for p in checked if p["status"] == "skipped"],
        "download_images": bool(sec.get("download_images")),
        "code_version": code_version(),
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(out_dir / "ready.json", ready)
    n_ready = sum(p["status"] != "skipped" for p in checked)
    print(f"{benchmark}: {len(files)} annotation files; {n_ready} of {len(checked)} pieces have images")
    for p in checked:
        print(f"  {p['piece']}: {p['status']} ({p['n_images_found']}/{p['n_images']} images)"
              + (f": {p['reason']}" if p["reason"] else ""))
    return ready


def prepare_archive(archive: str, config: dict, out_file: str | os.PathLike) -> dict:
    """Download (resumable; checksum recorded once the archive extracted, then verified)
    and safely extract one image archive into ``<results>/benchmark_data/images/<archive>/``;
    the archive is deleted after a successful extraction, and a file that is no archive
    (or a damaged one) is deleted with its lock entry, so running again downloads it
    anew. Writes ``out_file`` (the rule's marker)."""
    from dualclip.io import write_json

    info = sources()["archives"][archive]
    folder = images_root(config) / archive
    lock_file = folder / LOCK_NAME
    dest = folder / info["file"]
    url = resolve_url(info["url"])
    print(f"downloading {info['about']} from {url} (resumable: run again after an interruption)")
    try:
        # The extraction validates the download: its checksum is recorded only after it.
        extracted = download_and_extract(url, dest, folder, sha256=info.get("sha256"),
                                         lock_file=lock_file, timeout=120, retries=5)
    except InvalidDownloadError as e:
        if info["url"].startswith(GDRIVE_PREFIX):
            raise InvalidDownloadError(
                f"{e}. Google Drive may have answered a confirmation page: download "
                f"{manual_url(info['url'])} by hand, unzip it and set the image folder in the "
                f"config instead of download_images") from e
        raise
    digest = sha256_file(dest)
    dest.unlink()
    record = {"archive": archive, "url": url, "sha256": digest, "n_files": len(extracted),
              "folder": str(folder)}
    write_json(out_file, record)
    return record


# --------------------------------------------------------------------------- evaluate

def load_items(benchmark: str, ready: dict):
    """Items of a prepared benchmark (a ``LoadResult``; a ``RetrievalSet`` for retrieval)."""
    from .items import LoadResult, SkippedPiece

    ann = Path(ready["annotations"])
    usable = [p for p in ready["pieces"] if p["status"] != "skipped"]
    skipped = [SkippedPiece(benchmark, p["piece"], p["n_items"], p["reason"])
               for p in ready["pieces"] if p["status"] == "skipped"]
    # a piece served by several folders (VALSE coreference-standard) lists them in "folders"
    folders = {p["piece"]: p["folders"] if len(p.get("folders", [])) > 1 else p["folder"] for p in usable}
    entry = get_benchmark(benchmark)
    if not usable:
        if entry.retrieval:
            from .coco_retrieval import RetrievalSet

            return RetrievalSet(skipped_pieces=skipped)
        return LoadResult(skipped_pieces=skipped)
    data = entry.load(ann, folders)
    data.skipped_pieces = skipped + data.skipped_pieces
    return data


def _retrieval_per_item(sim, data) -> pd.DataFrame:
    import numpy as np
    import pandas as pd  # here, not at import: the DAG build imports this module

    rows = []
    for i, gt in enumerate(data.img2txt):
        wrong = np.ones(sim.shape[1], dtype=bool)
        wrong[gt] = False
        best = sim[i, gt].max()
        other = sim[i, wrong].max() if wrong.any() else float("-inf")
        rows.append(("i2t", str(i), int((sim[i, wrong] >= best).sum()), best, other))
    for t, i in enumerate(data.txt2img):
        col = sim[:, t]
        wrong = np.ones(sim.shape[0], dtype=bool)
        wrong[i] = False
        other = col[wrong].max() if wrong.any() else float("-inf")
        rows.append(("t2i", str(t), int((col[wrong] >= col[i]).sum()), col[i], other))
    df = pd.DataFrame(rows, columns=["direction", "item_id", "rank", "pos_score", "max_neg_score"])
    df.insert(0, "suite", "karpathy_test")
    df.insert(0, "benchmark", "coco_retrieval")
    df["correct"] = df["rank"] == 0
    return df


def flag_incomplete(summary: pd.DataFrame, per_item: pd.DataFrame, skips: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_items_total`` (the items the annotation file holds for the row) and
    ``incomplete`` (scored on fewer): items whose image is missing are counted back, per
    suite for the suites that were scored, all of them for the aggregate rows (REPLACE,
    mean, macro, micro...). For retrieval the missing items are images. A whole piece
    without images has no row: it is listed in the skips CSV and ``ready.json``."""
    import pandas as pd  # here, not at import: the DAG build imports this module
    item_skips = skips[skips["level"] == "item"] if len(skips) else skips
    per_suite = item_skips.groupby("suite").size() if len(item_skips) else pd.Series(dtype="int64")
    scored = set(per_item["suite"]) if "suite" in per_item.columns else set()
    missing = [int(per_suite.get(suite, 0)) if suite in scored else len(item_skips) for suite in summary["suite"]]
    summary = summary.copy()
    summary["n_items_total"] = summary["n_items"].astype("int64") + pd.Series(missing, index=summary.index,
                                                                               dtype="int64")
    summary["incomplete"] = summary["n_items_total"] > summary["n_items"]
    return summary


def evaluate(model_file: str | os.PathLike, benchmark: str, config: dict, out_csv: str | os.PathLike,
             per_item_csv: str | os.PathLike, device: str = "auto", *, ready_file=None,
             skips_csv=None, batch_size: int | None = None, num_workers: int = 0) -> pd.DataFrame:
    """Score one trained run on one prepared benchmark; returns the long-format scores.

    ``ready_file`` defaults to ``<results>/benchmark_data/<benchmark>/ready.json``;
    ``skips_csv`` to ``<out_csv stem>_skips.csv`` beside ``out_csv``.
    """
    import pandas as pd  # here, not at import: the DAG build imports this module
    import torch

    from dualclip.io import write_text
    from dualclip.runtime import resolve_device
    from dualclip.train.models import load_checkpoint_model

    from .coco_retrieval import retrieval_recall, similarity_matrix, summarise_retrieval
    from .evaluate import PER_ITEM_COLUMNS, score_items
    from .items import LoadResult
    from .scoring import RESULT_COLUMNS, summarise, summarise_baselines

    out_csv = Path(out_csv)
    ready_file = Path(ready_file) if ready_file else (
        Path(config.get("results_dir", "results")) / "benchmark_data" / benchmark / "ready.json")
    skips_csv = Path(skips_csv) if skips_csv else out_csv.with_name(f"{out_csv.stem}_skips.csv")
    ready = read_json(ready_file)
    if ready["benchmark"] != benchmark:
        raise ValueError(f"{ready_file} describes {ready['benchmark']!r}, not {benchmark!r}")
    batch_size = int(batch_size or config.get("eval", {}).get("batch_size", 64))
    torch_device = resolve_device(device)
    data = load_items(benchmark, ready)
    retrieval = get_benchmark(benchmark).retrieval
    n_work = len(data.texts) if retrieval else len(data.items)
    if n_work:
        model, preprocess, tokenizer, checkpoint = load_checkpoint_model(model_file, torch_device)
        if retrieval:
            sim = similarity_matrix(model, preprocess, tokenizer, data, torch_device, batch_size)
            summary = summarise_retrieval(retrieval_recall(sim, data.img2txt, data.txt2img),
                                          len(data.image_paths), len(data.texts))
            per_item = _retrieval_per_item(sim, data)
        else:
            per_item = score_items(model, preprocess, tokenizer, data.items, torch_device,
                                   batch_size, num_workers)
            summary = pd.concat([summarise(benchmark, per_item), summarise_baselines(benchmark, per_item)],
                                ignore_index=True)
    else:
        checkpoint = torch.load(model_file, map_location="cpu", weights_only=True)
        summary = pd.DataFrame(columns=RESULT_COLUMNS)
        per_item = pd.DataFrame(columns=PER_ITEM_COLUMNS)
        log.warning("%s: nothing to evaluate (every piece skipped): writing empty scores", benchmark)
    from dualclip.eval import label_with_run

    skips = LoadResult(skipped_items=list(data.skipped_items),
                       skipped_pieces=list(data.skipped_pieces)).skips_frame()
    summary = flag_incomplete(summary, per_item, skips)
    label_with_run(summary, per_item, checkpoint["summary"])
    summary = summary[SCORE_COLUMNS]
    write_text(per_item_csv, per_item.to_csv(index=False))
    write_text(skips_csv, skips.to_csv(index=False))
    write_text(out_csv, summary.to_csv(index=False))
    print(f"{benchmark}: {n_work} items scored, {len(skips)} skip records")
    print(summary.to_string())
    return summary


__all__ = ["BENCHMARK_NAMES", "prepare", "prepare_archive", "evaluate", "load_items", "flag_incomplete",
           "configured", "section", "pieces", "archives_needed", "image_folder", "sources",
           "pinned_checksums", "annotation_urls"]
