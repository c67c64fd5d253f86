"""An LLM judge in place of the paper's human raters (optional; `--judge_model` or `--judge_endpoint`).

The paper's raters answered, per output: is it consistent with the movie, and is it well written? The judge gets
the movie's facts (never the ELM's vector) and the text, and answers both on a fixed 1-5 rubric in a fixed format;
answers are cached like the teacher's, so re-running an evaluation pays nothing twice. Scores sit next to SC in
the report, with the judge's name; a reply that does not follow the format counts as unparsed (NaN), and the
share parsed is reported, so a weak judge shows itself.
"""

import re

import numpy as np

from ..data.chat import CachedChat
from ..data.movielens.writers.teacher import facts_text

JUDGE_SYSTEM = ("You grade short texts that another model wrote about a movie. You are strict and brief, and you "
                "answer only in the requested format.")
RUBRIC = """Movie facts:
{facts}

Text to grade:
"{text}"

Grade the text with two integers from 1 (not at all) to 5 (completely):
- consistent: is every statement in the text true of this movie, as far as the facts tell?
- well_written: is it fluent, clear English?
Answer in exactly this format and nothing else:
consistent: <1-5>
well_written: <1-5>"""
_SCORE = {name: re.compile(rf"{name}\s*[:=]\s*([1-5])", re.IGNORECASE) for name in ("consistent", "well_written")}


def parse_scores(answer: str) -> dict[str, float]:
    scores = {}
    for name, pattern in _SCORE.items():
        match = pattern.search(answer or "")
        scores[name] = float(match.group(1)) if match else float("nan")
    return scores


class Judge:
    def __init__(self, model: str | None = None, endpoint: str | None = None, cache_path="judge_cache.jsonl",
                 batch_size: int = 8):
        self.name = model or endpoint
        self.backend = CachedChat(model=model, endpoint=endpoint, cache_path=cache_path, batch_size=batch_size,
                                  max_new_tokens=16)

    def score(self, movies: list, texts: list[str], desc: str = "Judging") -> dict[str, np.ndarray]:
        """Per text, {"consistent": ..., "well_written": ...} as arrays (NaN where the reply was unparsable)."""
        prompts = [RUBRIC.format(facts=facts_text(movie), text=text.replace('"', "'"))
                   for movie, text in zip(movies, texts)]
        answers = self.backend.complete(prompts, system=JUDGE_SYSTEM, label="judge", desc=desc)
        parsed = [parse_scores(a) for a in answers]
        return {name: np.array([p[name] for p in parsed]) for name in _SCORE}
