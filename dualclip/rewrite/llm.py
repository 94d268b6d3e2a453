"""LLM rewrite backend: a chat LM rewrites the caption without a subset of its components.

One conversation per (caption, subset), all of them generated in batches. The model
answers ``{"text": "..."}`` (few-shot, ``config/prompts/rewrite.txt``). An answer is
accepted when it is JSON, ``check_dual_text`` finds no problem (no removed component
named, every kept component's phrase verbatim) and it is still one sentence. An invalid
answer is shown back to the model once with the problems; if the retry is invalid too,
that subset is rewritten by the fallback backend (``rule`` by default).

Reasons: ``rewrite_with_reasons`` returns a ``DualText`` per subset (text, the backend
that produced it, and why when it was not a first-try LLM answer); ``rewrite`` returns
only the texts and keeps the ``DualText`` list of its last call in ``last_results``
(``last_reasons`` holds just the reasons).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

from dualclip.llm import ChatGenerator, ChatLM, LLMSettings, extract_json, generate_validated, load_prompt
from dualclip.parse import Component
from dualclip.rewrite import check_dual_text


@dataclass(frozen=True, kw_only=True)
class LLMRewriteSettings(LLMSettings):
    prompt: str = "config/prompts/rewrite.txt"
    fallback: str | None = "rule"  # a rewrite backend, or "none": keep the reason, text left empty
    retries: int = 1  # times an invalid answer is shown back to the model

# A sentence end followed by more text: "A dog. A cat." (the answer must stay one sentence).
_SENTENCE_BREAK = re.compile(r"[.!?]+[\"')\]]*\s+\S")


@dataclass
class DualText:
    text: str
    backend: str  # "llm" or the fallback's name
    reason: str | None = None  # why it is not a first-try LLM answer; None when it is

    def to_dict(self) -> dict:
        return asdict(self)


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
            if outcome.ok:
                results.append(DualText(outcome.value, self.name, "llm answer valid on retry" if outcome.retried else None))
            else:
                results.append(None)
                failed.append(i)
        fallback = self.fallback() if failed else None
        for i in failed:
            caption, components, subset = flat[i]
            why = f"llm answer invalid after {self.retries} retr{'y' if self.retries == 1 else 'ies'}: " + "; ".join(outcomes[i].problems)
            if fallback is None:
                results[i] = DualText("", "none", why + "; no fallback rewriter configured")
                continue
            text = fallback.rewrite(caption, components, [subset])[0]
            remaining = check_dual_text(text, caption, components, subset)
            name = getattr(fallback, "name", "fallback")
            results[i] = DualText(
                text, name, why + f"; used the {name} rewriter" + (f" (its text has problems too: {'; '.join(remaining)})" if remaining else "")
            )
        grouped: list[list[DualText]] = []
        position = 0
        for _, _, subsets in items:
            grouped.append(results[position:position + len(subsets)])  # type: ignore[arg-type]
            position += len(subsets)
        self.last_results = [result for group in grouped for result in group]
        return grouped
