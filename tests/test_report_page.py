"""The report page: its first screen (findings, data funnel, compact table) from a small
hand-made results folder, a planned run without scores listed, rejected duals in the
gallery, and the page loaded in headless Chromium (no script error, every image decodes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dualclip.io import write_json, write_png
from dualclip.report import write_report
from dualclip.report.overview import compact_table, data_funnel, findings, missing_runs, not_discriminative

N_TRAIN = 4
SHARD = "0"
# (method, seed) -> suite -> (accuracy, blind_accuracy); R@1 for retrieval_t2i. ours minus baseline
# per seed: sc_add_obj +10, +13 (blind +1, 0); omission +6, +4 with the blind gaining as much (a text
# prior); sc_swap_att -5, -4; retrieval_t2i +1, -1 (mixed).
SCORES = {
    ("baseline", 0): {"sc_add_obj": (60, 50), "omission": (60, 50), "sc_swap_att": (70, 50), "retrieval_t2i": (20, None)},
    ("baseline", 1): {"sc_add_obj": (62, 50), "omission": (60, 50), "sc_swap_att": (70, 50), "retrieval_t2i": (20, None)},
    ("ours", 0): {"sc_add_obj": (70, 51), "omission": (66, 56), "sc_swap_att": (65, 50), "retrieval_t2i": (21, None)},
    ("ours", 1): {"sc_add_obj": (75, 50), "omission": (64, 54), "sc_swap_att": (66, 50), "retrieval_t2i": (19, None)},
}
# planned: negclip seed 0 too, which has no scores (a failed or unfinished run)
PLANNED = [["baseline", N_TRAIN, 0], ["baseline", N_TRAIN, 1], ["ours", N_TRAIN, 0], ["ours", N_TRAIN, 1],
           ["negclip", N_TRAIN, 0]]


class Outputs(dict):
    """Snakemake's named output, as write_report reads it."""

    __getattr__ = dict.__getitem__


def image(colour) -> np.ndarray:
    return np.full((16, 16, 3), colour, dtype=np.uint8)


def make_results(root: Path) -> tuple[dict, list[str], list[str], list[str], list[str]]:
    """A results folder for 4 training images in one shard, as the stages write it:
    slot 0: 2 components found, 3 duals, the dual text of {0, 1} fails its check and the
    filter rejects the dual image of {1}; slot 1: 2 components, 1 found, 1 dual; slot 2:
    no component parsed; slot 3: skipped at download."""
    results = root / "results"
    stage = {name: results / name / "train" / SHARD for name in ("data", "parse", "detect", "inpaint", "rewrite", "filter")}
    components = {0: ["circle", "cube"], 1: ["square", "star"], 2: [], 3: []}
    found = {0: [True, True], 1: [False, True], 2: [], 3: []}
    subsets = {0: [[0], [1], [0, 1]], 1: [[1]], 2: [], 3: []}
    for slot in range(N_TRAIN):
        caption = f"a scene {slot} with {' and '.join(components[slot]) or 'nothing nameable'}"
        truth = {"image_id": f"train-0000-{slot:03d}", "caption": caption}
        if slot == 3:
            truth.update(status="skipped", reason="corrupt image file 'x.jpg'")
        write_png(stage["data"] / f"{slot}.png", image(40 * slot))
        write_json(stage["data"] / f"{slot}.json", truth)
        parse = {"image_id": truth["image_id"], "caption": caption, "status": "ok",
                 "components": [{"text": c, "label": c} for c in components[slot]]}
        if slot == 2:
            parse.update(status="skipped", reason="no noun component in the caption")
        write_json(stage["parse"] / f"{slot}.json", parse)
        write_json(stage["detect"] / f"{slot}.json", {
            "image_id": truth["image_id"], "components": [{"index": i, "label": c, "found": f}
                                                          for i, (c, f) in enumerate(zip(components[slot], found[slot]))]})
        duals = []
        for subset in subsets[slot]:
            name = "drop-" + "+".join(map(str, subset)) + ".png"
            write_png(stage["inpaint"] / str(slot) / name, image(200 - 30 * len(subset)))
            duals.append({"subset": subset, "file": name})
        (stage["inpaint"] / str(slot)).mkdir(parents=True, exist_ok=True)
        write_json(stage["inpaint"] / str(slot) / "duals.json", {"image_id": truth["image_id"], "duals": duals})
        write_json(stage["rewrite"] / f"{slot}.json", {"image_id": truth["image_id"], "caption": caption, "duals": [
            {"subset": s, "text": f"{caption} without {s}", "check_ok": s != [0, 1],
             "problems": [] if s != [0, 1] else ["removed component noun 'cube' still present"]} for s in subsets[slot]]})
        write_json(stage["filter"] / f"{slot}.json", {"image_id": truth["image_id"], "decisions": [
            {"file": d["file"], "subset": d["subset"], "accepted": (slot, d["subset"]) != (0, [1]),
             "reasons": [] if (slot, d["subset"]) != (0, [1]) else ["kept component 'circle' no longer detected"]}
            for d in duals]})
    manifests = []
    for folder in stage.values():
        write_json(folder / "manifest.json", {"files": []})
        manifests.append(str(folder / "manifest.json"))
    score_files, summary_files, log_files = [], [], []
    for (method, seed), suites in SCORES.items():
        rows = []
        for suite, (accuracy, blind) in suites.items():
            metric = "R@1" if suite.startswith("retrieval") else "accuracy"
            rows.append((suite, metric, accuracy))
            if blind is not None:
                rows.append((suite, "blind_accuracy", blind))
        scores = pd.DataFrame([{"method": method, "n_train": N_TRAIN, "seed": seed, "benchmark": "synthetic",
                                "suite": suite, "metric": metric, "value": float(value), "n_items": 100}
                               for suite, metric, value in rows])
        run = results / "train" / method / f"n{N_TRAIN}" / f"seed{seed}"
        eval_file = results / "eval" / method / f"n{N_TRAIN}" / f"seed{seed}" / "synthetic.csv"
        eval_file.parent.mkdir(parents=True, exist_ok=True)
        scores.to_csv(eval_file, index=False)
        score_files.append(str(eval_file))
        uses_duals = method == "ours"
        write_json(run / "summary.json", {
            "method": method, "seed": seed, "steps": 4, "epochs": 1.0, "images_seen": 32, "texts_seen": 32,
            "n_samples": N_TRAIN - 1, "n_duals_used": 2 if uses_duals else 0, "n_duals_rejected": 2 if uses_duals else 0,
            "duals_rejected_by_reason": {"dual text failed its check": 1, "dual image rejected by the filter": 1} if uses_duals else {},
            "subset_policy": "all" if uses_duals else None, "n_duals_left_out_by_policy": 0,
            "neighbour_model": None, "device": "cpu", "code_version": "test"})
        pd.DataFrame({"step": [1, 2, 3, 4], "epoch": [0, 0, 0, 0], "lr": [1e-3] * 4, "loss": [2.0, 1.8, 1.7, 1.5],
                      "images_seen": [8, 16, 24, 32]}).to_csv(run / "train_log.csv", index=False)
        summary_files.append(str(run / "summary.json"))
        log_files.append(str(run / "train_log.csv"))
    config = {
        "results_dir": str(results), "shard_size": 10, "device": "cpu",
        "dataset": {"name": "shapes", "n_train": N_TRAIN},
        "model": {"name": "dualclip-tiny", "pretrained": None},
        "train": {"methods": ["baseline", "negclip", "ours"], "seeds": [0, 1], "compute": "equal_compute",
                  "budget_images": 32, "batch_images": 8, "epochs": 1},
        "filter": {"enabled": True},
        # the baseline's sc_add_obj (61) and omission (60) fall below 65: shown apart
        "report": {"gallery_size": 2, "comparisons": [["ours", "baseline"], ["ours", "negclip"]],
                   "discriminative_range": [65, 90]},
    }
    return config, score_files, summary_files, log_files, manifests


def render(root: Path) -> Path:
    config, score_files, summary_files, log_files, manifests = make_results(root)
    out = root / "results" / "report"
    outputs = Outputs(html=str(out / "report.html"), table=str(out / "scores.csv"), summary=str(out / "summary.csv"),
                      paired=str(out / "paired_differences.csv"), equivalents=str(out / "real_image_equivalents.csv"),
                      figure=str(out / "suites.png"), curves=str(out / "training_curves.png"))
    write_report(config, score_files, summary_files, log_files, outputs, funnel_manifests=manifests, expected_runs=PLANNED)
    return out / "report.html"


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("report"))


def scores_frame(root: Path) -> pd.DataFrame:
    from dualclip.report import load_scores

    _, score_files, *_ = make_results(root)
    return load_scores(score_files, N_TRAIN)


# ------------------------------------------------------------------ the first screen's pieces


def test_findings_from_paired_differences(tmp_path):
    found = findings(scores_frame(tmp_path), [["ours", "baseline"], ["ours", "negclip"]])
    ours, negclip = found
    assert ours.comparison == "ours − baseline" and ours.seeds == 2 and not ours.missing
    assert [gain.suite for gain in ours.ahead] == ["sc_add_obj", "omission"]  # largest gain first
    assert ours.ahead[0].text == "sc_add_obj +11.5 ± 2.1, blind +0.5"
    assert [gain.suite for gain in ours.behind] == ["sc_swap_att"] and ours.behind[0].mean == -4.5
    assert ours.mixed == 1  # retrieval: +1 then -1
    assert [gain.suite for gain in ours.text_prior] == ["omission"]  # the blind score gains +5 of +5
    assert negclip.missing and not negclip.ahead  # no negclip scores: listed as not made


def test_suites_outside_the_discriminative_range_are_listed_apart(tmp_path):
    scores = scores_frame(tmp_path)
    # the baseline's accuracy means: sc_add_obj 61, omission 60, sc_swap_att 70; R@1 never bounded
    assert not_discriminative(scores, (60, 90)) == {}
    apart = not_discriminative(scores, (65, 90))
    assert apart == {("synthetic", "sc_add_obj", "accuracy"): 61.0, ("synthetic", "omission", "accuracy"): 60.0}
    assert set(not_discriminative(scores, (0, 65))) == {("synthetic", "sc_swap_att", "accuracy")}
    (ours,) = findings(scores, [["ours", "baseline"]], apart)
    assert ours.ahead == [] and ours.text_prior == []  # the ranking suites only
    assert [gain.suite for gain in ours.ahead_apart] == ["sc_add_obj", "omission"]
    assert [gain.suite for gain in ours.behind] == ["sc_swap_att"] and ours.behind_apart == []
    assert ours.mixed == 1  # retrieval R@1 still ranks
    runs, rows, rows_apart = compact_table(scores, PLANNED, N_TRAIN, apart)
    assert [suite for suite, _ in rows] == ["sc_swap_att", "retrieval_t2i R@1"]
    assert [suite for suite, _ in rows_apart] == ["sc_add_obj", "omission"]


def test_compact_table_keeps_a_planned_run_without_scores(tmp_path):
    scores = scores_frame(tmp_path)
    runs, rows, rows_apart = compact_table(scores, PLANNED, N_TRAIN)
    assert rows_apart == []
    assert runs == ["baseline", "negclip", "ours"]  # report order; negclip kept though it has no score
    table = dict(rows)
    baseline, negclip, ours = table["sc_add_obj"]
    assert negclip.value is None and baseline.difference is None
    assert ours.value == 72.5 and ours.blind == 50.5 and ours.difference == 11.5 and ours.seeds == 2
    assert "40,150,60" in ours.style and "200,50,50" in table["sc_swap_att"][2].style
    assert table["retrieval_t2i R@1"][2].blind is None
    assert missing_runs(scores, PLANNED, N_TRAIN) == ["negclip seed 0"]


def test_data_funnel_counts_each_step_and_its_reasons(tmp_path):
    config, _, summary_files, _, manifests = make_results(tmp_path)
    summaries = [json.loads(Path(path).read_text()) for path in summary_files]
    steps = {step.step: step for step in data_funnel(manifests, N_TRAIN, 10, summaries)}
    assert list(steps) == ["captions", "components parsed", "found in the image", "dual images",
                           "dual texts passing the check", "accepted by the filter", "used in training: ours"]
    assert (steps["captions"].count, steps["captions"].lost) == (3, 1)
    assert steps["captions"].reasons == [("corrupt image file …", 1)]  # particulars dropped
    assert (steps["components parsed"].count, steps["components parsed"].images) == (4, 2)
    assert steps["components parsed"].reasons == [("no noun component in the caption", 1)]
    assert (steps["found in the image"].count, steps["found in the image"].lost) == (3, 1)
    assert steps["found in the image"].reasons == [("not found: square", 1)]
    assert (steps["dual images"].count, steps["dual images"].images) == (4, 2)
    assert (steps["dual texts passing the check"].count, steps["dual texts passing the check"].lost) == (3, 1)
    assert steps["dual texts passing the check"].reasons == [("removed component noun … still present", 1)]
    # nested: of the 3 duals whose text passed, the filter rejects 1 (it accepts 3 of all 4 dual images)
    assert (steps["accepted by the filter"].count, steps["accepted by the filter"].lost) == (2, 1)
    assert "accepts 3 of all 4" in steps["accepted by the filter"].note
    assert steps["used in training: ours"].count == 2
    assert ("dual text failed its check", 1.0) in steps["used in training: ours"].reasons


# ------------------------------------------------------------------ the page


def test_page_opens_with_findings_funnel_and_compact_table(report_page):
    page = report_page.read_text()
    first_screen = page.split('<div class="first-screen">', 1)[1].split("</div>", 1)[0]
    for section in ('<section id="findings">', '<section id="funnel">', '<section id="compact">'):
        assert section in first_screen
    assert page.index('id="findings"') < page.index("<h2>Results</h2>")  # the verdict before the long table
    assert "negclip seed 0" in first_screen  # a planned run without scores is listed, not dropped
    assert "<b>ours − negclip</b>: not in this study" in first_screen
    assert "sc_add_obj +11.5 ± 2.1, blind +0.5" in first_screen
    # below the baseline's 65 (report.discriminative_range), sc_add_obj and omission are shown apart
    compact = first_screen.split('<section id="compact">', 1)[1]
    assert compact.index("sc_swap_att") < compact.index('id="not-discriminative"') < compact.index("sc_add_obj")
    assert "on suites not discriminative at this budget: ahead on sc_add_obj" in first_screen
    assert "possibly a text prior" not in first_screen  # omission's text prior is on a suite apart
    # a run that lost a skipped image (n_samples 3) keeps its planned name everywhere
    assert "(n=3)" not in page
    assert "used in training: ours" in first_screen and "removed component noun … still present (1)" in first_screen
    compact = first_screen.split('<section id="compact">', 1)[1]
    assert '<th>negclip</th>' in compact and 'title="no score">—' in compact
    assert "rgba(40,150,60," in compact and "rgba(200,50,50," in compact


def test_page_shows_rejected_duals_and_the_corrected_sham_legend(report_page):
    page = report_page.read_text()
    assert 'id="rejected"' in page
    assert "check failed: removed component noun &#39;cube&#39; still present" in page  # autoescaped
    assert "filter rejected: kept component &#39;circle&#39; no longer detected" in page
    assert "keys on inpainting artefacts" in page and "~50 means the image-side gain" not in page


def test_page_escapes_the_values_it_shows(tmp_path):
    config, score_files, summary_files, log_files, manifests = make_results(tmp_path)
    rewrite = tmp_path / "results" / "rewrite" / "train" / SHARD / "0.json"
    record = json.loads(rewrite.read_text())
    record["caption"] = "a <script>alert(1)</script> circle"
    rewrite.write_text(json.dumps(record))
    out = tmp_path / "out"
    outputs = Outputs(html=str(out / "report.html"), table=str(out / "scores.csv"), summary=str(out / "summary.csv"),
                      paired=str(out / "paired.csv"), equivalents=str(out / "eq.csv"), figure=str(out / "suites.png"),
                      curves=str(out / "curves.png"))
    write_report(config, score_files, summary_files, log_files, outputs, funnel_manifests=manifests, expected_runs=PLANNED)
    page = (out / "report.html").read_text()
    assert "<script>" not in page and "a &lt;script&gt;alert(1)&lt;/script&gt; circle" in page


# ------------------------------------------------------------------ in a browser


def chromium() -> str:
    """Debian's chromium (.ci/run installs it): a missing browser fails the test, never skips it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium not found on PATH: the report-page test loads the page in headless Chromium; "
                    "install it (Debian: apt-get install -y chromium; .ci/run does)")
    return found


class DevTools:
    """A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    commands on fd 3, replies and events on fd 4, one JSON message per NUL): no port, no
    client library."""

    def __init__(self, timeout: float = 60.0):
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def child_fds():  # the fds the protocol names, whatever numbers os.pipe() returned
            read, write = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self._profile = tempfile.mkdtemp(prefix="report-page-chromium-")
        self.process = subprocess.Popen(
            [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.events = b"", 0, []
        self._deadline = time.monotonic() + timeout

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > self._deadline:
                raise TimeoutError("headless Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"headless Chromium closed the pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        for message in self.events:
            if message.get("method") == event:
                return message
        while True:
            message = self._message()
            self.events.append(message)
            if message.get("method") == event:
                return message

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)


# every <img> decoded (decode() rejects an image the browser cannot decode) with its size
IMAGES_DECODE = """Promise.all([...document.images].map(img => img.decode().then(
    () => ({src: img.src.slice(0, 40), width: img.naturalWidth, height: img.naturalHeight, error: null}),
    error => ({src: img.src.slice(0, 40), width: 0, height: 0, error: String(error)}))))"""


def load_in_browser(page: Path) -> dict:
    """Load a page in headless Chromium: its errors (script exceptions, console and log
    errors, failed loads), every image's decode result, and the ids of its sections."""
    browser = DevTools()
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session, url=page.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        images = browser.send("Runtime.evaluate", session, expression=IMAGES_DECODE, awaitPromise=True,
                              returnByValue=True)["result"]["value"]
        sections = browser.send("Runtime.evaluate", session, returnByValue=True,
                                expression="[...document.querySelectorAll('section[id]')].map(s => s.id)")["result"]["value"]
        errors = []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(f"script: {params['exceptionDetails'].get('exception', {}).get('description') or params['exceptionDetails']['text']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(f"console: {[arg.get('value', arg.get('description')) for arg in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"log: {params['entry']['text']}")
            elif method == "Network.loadingFailed":
                errors.append(f"load failed: {params.get('errorText')}")
        return {"errors": errors, "images": images, "sections": sections}
    finally:
        browser.close()


@pytest.mark.slow
def test_report_page_loads_in_chromium_and_its_images_decode(report_page):
    loaded = load_in_browser(report_page)
    assert loaded["errors"] == []
    assert loaded["sections"][:3] == ["findings", "funnel", "compact"]
    # 3 figures, then the gallery (2 images x their duals) and the rejected duals
    assert len(loaded["images"]) >= 3 + 2 + 4
    broken = [image for image in loaded["images"] if image["error"] or not image["width"] or not image["height"]]
    assert broken == []


@pytest.mark.slow
def test_the_browser_check_sees_a_broken_image_and_a_script_error(tmp_path):
    """The check above can fail: a corrupt PNG and a throwing script are reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><html><body><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">'
                    "<script>undefinedFunction()</script></body></html>")
    loaded = load_in_browser(page)
    assert any("undefinedFunction" in error for error in loaded["errors"])
    assert loaded["images"][0]["error"] and loaded["images"][0]["width"] == 0


def test_report_shows_the_manifold_section(tmp_path):
    # (issue 15 item 4) the manifold section, with and without its table
    config, score_files, summary_files, log_files, manifests = make_results(tmp_path)
    table = tmp_path / "manifold.csv"
    pd.DataFrame([{"method": "baseline", "n_train": 4, "seed": 0, "backend": "opencv", "n_removed": size,
                   "n_images": 3, "n_duals": 4, "frechet_distance": 0.1234, "frechet_floor": 0.05,
                   "probe_accuracy": 87.66, "cosine_distance": 0.25, "cosine_distance_between_originals": 1.0,
                   "code_version": "test"} for size in ("1", "all")]).to_csv(table, index=False)
    out = tmp_path / "report"
    pages = {}
    for name, files in (("with", [str(table)]), ("without", [])):
        outputs = Outputs(html=str(out / f"{name}.html"), table=str(out / "scores.csv"), summary=str(out / "summary.csv"),
                          paired=str(out / "paired.csv"), equivalents=str(out / "equivalents.csv"),
                          figure=str(out / "suites.png"), curves=str(out / "curves.png"))
        write_report(config, score_files, summary_files, log_files, outputs, funnel_manifests=manifests,
                     expected_runs=PLANNED, manifold_files=files)
        pages[name] = Path(outputs["html"]).read_text()
    section = pages["with"].split('<section id="manifold">', 1)[1].split("</section>", 1)[0]
    assert "Do dual images lie near the data manifold?" in section
    assert "baseline (n=4, seed 0)" in section and "0.123" in section and "87.7" in section
    assert "probe accuracy" in section and "Fréchet distance" in section and "cosine distance" in section
    assert "Not measured" in pages["without"].split('<section id="manifold">', 1)[1].split("</section>", 1)[0]


def test_policy_runs_are_compared_and_a_missing_policy_run_is_listed(tmp_path):
    # (issue 15) ours@singletons beside ours: compared seed by seed, sorted under ours; a planned
    # policy run without scores is listed, never dropped
    scores = scores_frame(tmp_path)
    ours = scores[scores["run"] == "ours"]
    singles = ours.assign(run="ours@singletons", method="ours@singletons",
                          value=ours["value"] - 2 * ((ours["suite"] == "sc_add_obj") & (ours["metric"] == "accuracy")))
    scores = pd.concat([scores, singles], ignore_index=True)
    (finding,) = findings(scores, [["ours", "ours@singletons"]])
    assert [gain.text for gain in finding.ahead] == ["sc_add_obj +2.0 ± 0.0, blind +0.0"]
    assert finding.behind == [] and finding.mixed == 3  # the other suites tie on both seeds
    planned = [*PLANNED, ["ours@singletons", N_TRAIN, 0], ["ours@singletons", N_TRAIN, 1], ["ours@sample_k", N_TRAIN, 0]]
    runs, _, _ = compact_table(scores, planned, N_TRAIN)
    assert runs == ["baseline", "negclip", "ours", "ours@singletons", "ours@sample_k"]  # the policies in registry order
    assert missing_runs(scores, planned, N_TRAIN) == ["negclip seed 0", "ours@sample_k seed 0"]
