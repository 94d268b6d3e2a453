"""rewrite: the caption without the components of a subset (the dual text).

Backend interface: ``get_rewriter(config)`` returns an object with
``rewrite(caption, components, subsets) -> list[str]``, one dual text per subset.
``check_dual_text`` validates any backend's output the same way.
"""

from __future__ import annotations

from typing import Protocol

from dualclip.parse import Component
from dualclip.registry import create, register
from dualclip.rewrite.check import check_dual_text, check_dual_texts  # noqa: F401  (re-exported)


class Rewriter(Protocol):
    name: str

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]: ...


register("rewrite", "rule", "dualclip.rewrite.rule:RuleRewriter", "dualclip.rewrite.rule:RuleSettings",
         "the caption's list or dependency grammar without the removed components")
register("rewrite", "llm", "dualclip.rewrite.llm:LLMRewriter", "dualclip.rewrite.llm:LLMRewriteSettings",
         "a chat LM rewrites the caption, every answer checked (falls back to rule)")


def get_rewriter(config: dict) -> Rewriter:
    return create("rewrite", config)


def run_shard(config: dict, parse_files: list[str], detect_files: list[str], out_files: list[str]) -> dict:
    """Dual texts of one shard, one per subset of the found components, each checked.

    A rewriter with ``rewrite_batch`` (the llm backend) gets the subsets of all images of
    the shard in one call, so its model generates full batches of its ``batch_size`` rows
    (an image has at most 2^N - 1 rows, fewer than a batch); other rewriters (rule) go
    one image at a time (the rule rewriter parses the captions it needs first, in one
    ``nlp.pipe``, into the Doc cache the check reads too). Besides one ``{slot}.json``
    per image, the shard gets a ``summary.json`` (and the log a line): rows, check
    failures and, for a model, its ``generate()`` calls (``llm_calls``, retries
    included). The count is per shard, not
    per record, because the calls are shared by all images of the shard: a record stays
    a function of its own image. Returns the summary.
    """
    from pathlib import Path

    from tqdm import tqdm

    from dualclip.detect import detected_indices
    from dualclip.io import read_json, write_json
    from dualclip.parse import Component
    from dualclip.subsets import nonempty_subsets

    rewriter = get_rewriter(config)
    entries = []
    for parse_file, detect_file in zip(parse_files, detect_files):
        parsed = read_json(parse_file)
        components = [Component.from_dict(c) for c in parsed["components"]]
        entries.append((parsed, components, nonempty_subsets(detected_indices(read_json(detect_file)))))
    lm = getattr(rewriter, "lm", None)
    calls_before = getattr(lm, "generate_calls", None)
    batch = hasattr(rewriter, "rewrite_batch")
    batched: dict[int, list] = {}
    if batch:
        work = [i for i, (_, _, subsets) in enumerate(entries) if subsets]
        if work:
            grouped = rewriter.rewrite_batch([(entries[i][0]["caption"], entries[i][1], entries[i][2]) for i in work])
            batched = dict(zip(work, grouped))
    if hasattr(rewriter, "prepare"):  # the rule rewriter: every caption it parses, in one nlp.pipe
        rewriter.prepare([(parsed["caption"], components) for parsed, components, subsets in entries if subsets])
    rewritten = []  # (texts, reasons) per image
    for i, (parsed, components, subsets) in enumerate(tqdm(entries, desc=f"rewrite ({rewriter.name})", mininterval=5)):
        if batch:
            rewritten.append(([result.text for result in batched.get(i, [])], [result.reason for result in batched.get(i, [])]))
        else:
            texts = rewriter.rewrite(parsed["caption"], components, subsets) if subsets else []
            rewritten.append((texts, getattr(rewriter, "last_reasons", None) or [None] * len(texts)))
    # every dual text of the shard checked at once: its captions and texts go through one nlp.pipe
    problems = iter(check_dual_texts([
        (text, parsed["caption"], components, subset)
        for (parsed, components, subsets), (texts, _) in zip(entries, rewritten) for subset, text in zip(subsets, texts)
    ]))
    n_failed = n_rows = 0
    for (parsed, _, subsets), (texts, reasons), out in zip(entries, rewritten, out_files):
        duals = []
        for subset, text, reason in zip(subsets, texts, reasons):
            found = next(problems)
            n_failed += bool(found)
            duals.append({"subset": list(subset), "text": text, "check_ok": not found, "problems": found, "note": reason})
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
