"""LLM rewrite backend: a chat LM rewrites the caption without a subset of its components.

One conversation per (caption, subset), all of them generated in batches. The model
answers ``{"text": "..."}`` (few-shot, ``config/prompts/rewrite.txt``). An answer is
accepted when it is JSON, ``check_dual_text`` finds no problem (no removed component
named, every kept component's phrase verbatim) and it is still one sentence. An invalid
answer is shown back to the model once with the problems; if the retry is invalid too,
that subset is rewritten by the fallback backend (``rule`` by default).

Reasons: ``rewrite_with_reasons`` returns a ``DualText`` per subset (text, the backend
that produced it, why when it was not a first-try LLM answer, and its check's problems:
none for an accepted answer, the fallback's text checked as the fallback checks it);
``rewrite`` returns only the texts and keeps the ``DualText`` list of its last call in
``last_results`` (``last_reasons`` holds just the reasons).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from dualclip.llm import ChatGenerator, ChatLM, LLMSettings, extract_json, generate_validated, load_prompt
from dualclip.parse import Component
from dualclip.rewrite import DualText, check_dual_text, check_dual_texts


@dataclass(frozen=True, kw_only=True)
class LLMRewriteSettings(LLMSettings):
    prompt: str = "config/prompts/rewrite.txt"
    fallback: str | None = "rule"  # a rewrite backend, or "none": keep the reason, text left empty
    retries: int = 1  # times an invalid answer is shown back to the model

# A sentence end followed by more text: "A dog. A cat." (the answer must stay one sentence).
_SENTENCE_BREAK = re.compile(r"[.!?]+[\"')\]]*\s+\S")


def sentence_problems(text: str) -> list[str]:
    problems = []
    if "\n" in text.strip():
        problems.append("answer has several lines; write one sentence")
    elif _SENTENCE_BREAK.search(text.strip()):
        problems.append("answer has more than one sentence; write one sentence")
    return problems


def validate_dual_text(data, caption: str, components: list[Component], subset: tuple[int, ...]) -> tuple[str | None, list[str]]:
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None, ['expected a JSON object {"text": "..."}']
    text = " ".join(data["text"].split())
    problems = check_dual_text(text, caption, components, subset) + sentence_problems(text)
    if text and text.lower().rstrip(".") == caption.lower().strip().rstrip("."):
        problems.append("answer repeats the caption unchanged")
    return (text if not problems else None), problems


def _quoted(texts: Sequence[str]) -> str:
    return ", ".join(f'"{text}"' for text in texts) if texts else "(none)"


class LLMRewriter:
    name = "llm"

    def __init__(self, config: dict, lm: ChatGenerator | None = None, fallback=None):
        self.config = config  # the whole section: the fallback rewriter reads its own keys from it
        self.settings = LLMRewriteSettings.from_config(config, "rewrite")
        self.prompt = load_prompt(self.settings.prompt)
        self.retries = int(self.settings.retries)
        self.lm = lm if lm is not None else ChatLM.from_config(config)
        self._fallback = fallback
        self.last_results: list[DualText] = []

    @property
    def last_reasons(self) -> list[str | None]:
        return [result.reason for result in self.last_results]

    def fallback(self):
        if self._fallback is None and self.settings.fallback not in (None, "none"):
            from dualclip.rewrite import get_rewriter

            self._fallback = get_rewriter({**self.config, "backend": self.settings.fallback})
        return self._fallback

    def fallback_texts(self, rows: list[tuple[str, list[Component], tuple[int, ...]]]) -> list[DualText]:
        """Checked texts of the ``(caption, components, subset)`` rows the model never answered
        validly: the fallback rewriter's, all in one batch, or an empty text without one."""
        fallback = self.fallback()
        if fallback is None:  # the empty text's problems say so ("empty dual text", what it lacks)
            return [DualText("", "none", "no fallback rewriter configured", found) for found in check_dual_texts(
                [("", caption, components, subset) for caption, components, subset in rows])]
        return [
            DualText(dual.text, dual.backend, f"used the {fallback.name} rewriter"
                     + (f" (its text has problems too: {'; '.join(dual.problems)})" if dual.problems else ""), dual.problems)
            for [dual] in fallback.rewrite_batch([(caption, components, [subset]) for caption, components, subset in rows])
        ]

    def conversation(self, caption: str, components: list[Component], subset: tuple[int, ...]):
        removed = [component.text for component in components if component.index in subset]
        kept = [component.text for component in components if component.index not in subset]
        return self.prompt.conversation(caption=caption, remove=_quoted(removed), keep=_quoted(kept))

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]:
        return [result.text for result in self.rewrite_with_reasons(caption, components, subsets)]

    def rewrite_with_reasons(
        self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]
    ) -> list[DualText]:
        return self.rewrite_batch([(caption, components, subsets)])[0]

    def rewrite_batch(
        self, items: Sequence[tuple[str, list[Component], list[tuple[int, ...]]]]
    ) -> list[list[DualText]]:
        """Many captions at once (one batched generation over all their subsets)."""
        flat = [(caption, components, tuple(subset)) for caption, components, subsets in items for subset in subsets]
        for caption, components, subset in flat:
            unknown = set(subset) - {component.index for component in components}
            if unknown:
                raise ValueError(f"rewrite: subset {subset} of caption {caption!r} names components {sorted(unknown)} it does not have")

        def validate(i: int, answer: str):
            caption, components, subset = flat[i]
            return validate_dual_text(extract_json(answer), caption, components, subset)

        outcomes = generate_validated(
            self.lm, [self.conversation(*entry) for entry in flat], validate, self.prompt, self.retries
        )
        results: list[DualText | None] = []
        failed: list[int] = []
        for i, outcome in enumerate(outcomes):
            if outcome.ok:  # accepted: validate_dual_text's check found no problem
                results.append(DualText(outcome.value, self.name, "llm answer valid on retry" if outcome.retried else None))
            else:
                results.append(None)
                failed.append(i)
        for i, replacement in zip(failed, self.fallback_texts([flat[i] for i in failed]) if failed else []):
            why = f"llm answer invalid after {self.retries} retr{'y' if self.retries == 1 else 'ies'}: " + "; ".join(outcomes[i].problems)
            replacement.reason = f"{why}; {replacement.reason}"
            results[i] = replacement
        grouped: list[list[DualText]] = []
        position = 0
        for _, _, subsets in items:
            grouped.append(results[position:position + len(subsets)])  # type: ignore[arg-type]
            position += len(subsets)
        self.last_results = [result for group in grouped for result in group]
        return grouped
