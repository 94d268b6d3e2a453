"""rewrite: the caption without the components of a subset (the dual text).

Backend interface: ``get_rewriter(config)`` returns an object with
``rewrite(caption, components, subsets) -> list[str]``, one dual text per subset, and
``rewrite_batch(items) -> list[list[DualText]]`` for many ``(caption, components,
subsets)`` at once, each text with its ``check_dual_text`` problems (the check every
backend's output goes through, the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from dualclip.parse import Component
from dualclip.registry import create, register
from dualclip.rewrite.check import check_dual_text, check_dual_texts  # noqa: F401  (re-exported)


@dataclass
class DualText:
    """One subset's dual text as ``rewrite_batch`` returns it: checked, so nobody checks it again."""

    text: str
    backend: str  # the rewriter that wrote it ("rule", "llm", the llm backend's fallback), "none": no text
    reason: str | None = None  # why it is not the backend's own first answer; None when it is
    problems: list[str] = field(default_factory=list)  # check_dual_text's findings on text; empty: accepted


class Rewriter(Protocol):
    name: str

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]: ...

    def rewrite_batch(
        self, items: Sequence[tuple[str, list[Component], list[tuple[int, ...]]]]
    ) -> list[list[DualText]]: ...


register("rewrite", "rule", "dualclip.rewrite.rule:RuleRewriter", "dualclip.rewrite.rule:RuleSettings",
         "the caption's list or dependency grammar without the removed components")
register("rewrite", "llm", "dualclip.rewrite.llm:LLMRewriter", "dualclip.rewrite.llm:LLMRewriteSettings",
         "a chat LM rewrites the caption, every answer checked (falls back to rule)")


def get_rewriter(config: dict) -> Rewriter:
    return create("rewrite", config)


def run_shard(config: dict, parse_files: list[str], detect_files: list[str], out_files: list[str]) -> dict:
    """Dual texts of one shard, one per subset of the found components, each checked.

    The rewriter gets the subsets of all images of the shard in one ``rewrite_batch``
    call: the llm backend's model generates full batches of its ``batch_size`` rows (an
    image has at most 2^N - 1 rows, fewer than a batch), the rule backend parses the
    captions it needs in one ``nlp.pipe``, into the Doc cache the check reads too; every
    text comes back with its check's problems. Besides one ``{slot}.json`` per image, the
    shard gets a ``summary.json`` (and the log a line): rows, check failures and, for a
    model, its ``generate()`` calls (``llm_calls``, retries included). The count is per
    shard, not per record, because the calls are shared by all images of the shard: a
    record stays a function of its own image. Returns the summary.
    """
    from pathlib import Path

    from dualclip.detect import detected_indices
    from dualclip.io import read_json, write_json
    from dualclip.subsets import nonempty_subsets

    rewriter = get_rewriter(config)
    entries = []
    for parse_file, detect_file in zip(parse_files, detect_files):
        parsed = read_json(parse_file)
        components = [Component.from_dict(c) for c in parsed["components"]]
        entries.append((parsed, components, nonempty_subsets(detected_indices(read_json(detect_file)))))
    lm = getattr(rewriter, "lm", None)
    calls_before = getattr(lm, "generate_calls", None)
    work = [i for i, (_, _, subsets) in enumerate(entries) if subsets]
    rewritten: dict[int, list[DualText]] = {}
    if work:
        grouped = rewriter.rewrite_batch([(entries[i][0]["caption"], entries[i][1], entries[i][2]) for i in work])
        rewritten = dict(zip(work, grouped))
    n_failed = n_rows = 0
    for i, ((parsed, _, subsets), out) in enumerate(zip(entries, out_files)):
        duals = []
        for subset, result in zip(subsets, rewritten.get(i, [])):
            n_failed += bool(result.problems)
            duals.append({"subset": list(subset), "text": result.text, "check_ok": not result.problems,
                          "problems": result.problems, "note": result.reason})
        n_rows += len(subsets)
        write_json(out, {"image_id": parsed["image_id"], "backend": rewriter.name, "caption": parsed["caption"], "duals": duals})
    print(f"rewrite: {n_failed} dual texts failed the check (recorded per image as check_ok=false)")
    summary = {"backend": rewriter.name, "n_images": len(entries), "n_rows": n_rows, "n_failed_check": n_failed}
    if calls_before is not None:
        summary.update(batch_size=getattr(lm, "batch_size", None), llm_calls=lm.generate_calls - calls_before)
        print(f"rewrite: {n_rows} rows of {len(entries)} images in {summary['llm_calls']} generate() calls "
              f"(batch_size {summary['batch_size']}, retries included)")
    if out_files:
        write_json(Path(out_files[0]).parent / "summary.json", summary)
    return summary
