"""rewrite: the caption without the components of a subset (the dual text).

Backend interface: ``get_rewriter(config)`` returns an object with
``rewrite(caption, components, subsets) -> list[str]``, one dual text per subset.
``check_dual_text`` validates any backend's output the same way.
"""

from __future__ import annotations

import re
from typing import Protocol

from dualclip.parse import Component


class Rewriter(Protocol):
    name: str

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]: ...


def _count_word(text: str, word: str) -> int:
    return len(re.findall(rf"\b{re.escape(word.lower())}\b", text.lower()))


def check_dual_text(dual_text: str, caption: str, components: list[Component], subset: tuple[int, ...]) -> list[str]:
    """Problems with a dual text: a removed component still named, a kept one lost.

    Compared by head-noun counts against the original caption, so "a red circle and a
    blue circle" without the red one must still name exactly one circle, and a noun
    that is not a component (a fourth object beyond N) may stay.
    """
    problems = []
    removed = set(subset)
    removed_per_head: dict[str, int] = {}
    for component in components:
        head = component.head.lower()
        if component.index in removed:
            removed_per_head[head] = removed_per_head.get(head, 0) + 1
        elif component.text.lower() not in dual_text.lower():
            problems.append(f"kept component {component.text!r} missing")
    for head, n_removed in sorted(removed_per_head.items()):
        allowed = _count_word(caption, head) - n_removed
        if _count_word(dual_text, head) > allowed:
            problems.append(f"removed component noun {head!r} still present")
    if not dual_text.strip():
        problems.append("empty dual text")
    return problems


def get_rewriter(config: dict) -> Rewriter:
    backend = config["backend"]
    if backend == "rule":
        from dualclip.rewrite.rule import RuleRewriter

        return RuleRewriter(config)
    if backend == "llm":
        from dualclip.rewrite.llm import LLMRewriter

        return LLMRewriter(config)
    raise ValueError(f"rewrite.backend: unknown backend {backend!r}; use 'rule' or 'llm'")


def run_shard(config: dict, parse_files: list[str], detect_files: list[str], out_files: list[str]) -> None:
    """Dual texts of one shard, one per subset of the found components, each checked."""
    from tqdm import tqdm

    from dualclip.detect import detected_indices
    from dualclip.subsets import nonempty_subsets
    from dualclip.io import read_json, write_json
    from dualclip.parse import Component

    rewriter = get_rewriter(config)
    n_failed = 0
    for parse_file, detect_file, out in tqdm(list(zip(parse_files, detect_files, out_files)), desc=f"rewrite ({rewriter.name})", mininterval=5):
        parsed = read_json(parse_file)
        components = [Component.from_dict(c) for c in parsed["components"]]
        subsets = nonempty_subsets(detected_indices(read_json(detect_file)))
        texts = rewriter.rewrite(parsed["caption"], components, subsets) if subsets else []
        reasons = getattr(rewriter, "last_reasons", None) or [None] * len(texts)
        duals = []
        for subset, text, reason in zip(subsets, texts, reasons):
            problems = check_dual_text(text, parsed["caption"], components, subset)
            n_failed += bool(problems)
            duals.append({"subset": list(subset), "text": text, "check_ok": not problems, "problems": problems, "note": reason})
        write_json(out, {"image_id": parsed["image_id"], "backend": rewriter.name, "caption": parsed["caption"], "duals": duals})
    print(f"rewrite: {n_failed} dual texts failed the check (recorded per image as check_ok=false)")
