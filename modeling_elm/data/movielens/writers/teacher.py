"""The teacher writer: an LM writes each target from the entity's facts, as PaLM 2-L did in the paper. The LM is a
`data.chat.CachedChat` (a local causal LM or an endpoint, every answer cached as it arrives)."""

import logging
from pathlib import Path

from ...chat import CachedChat
from .grounded import MovieFacts, UserFacts
from ..tasks import Task

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You write training data about movies and viewers. Use only the facts given; do not invent plot details, "
    "names or numbers that are not in them. Answer in plain prose (or the list asked for), without preamble."
)


def facts_text(entity) -> str:
    """The facts a teacher may use, one per line."""
    if isinstance(entity, UserFacts):
        return "\n".join([
            f"- favourite genres: {', '.join(entity.favourite_genres) or 'no clear favourite'}",
            f"- favourite decades: {', '.join(entity.favourite_decades) or 'none'}",
            f"- movies they rated highest: {', '.join(entity.loved_movies) or 'none'}",
            f"- least favourite genre: {entity.least_favourite_genre or 'none'}",
            f"- rates {entity.n_ratings} movies, {entity.mean_rating:.1f}/5 on average ({entity.rating_style} rater)",
        ])
    assert isinstance(entity, MovieFacts)
    lines = [f"- title: {entity.named}", f"- genres: {', '.join(entity.genres) or 'none listed'}"]
    if entity.tags:
        lines.append(f"- tags viewers gave it: {', '.join(entity.tags)}")
    if entity.mean_rating is not None:
        lines.append(f"- rated {entity.mean_rating:.1f}/5 by {entity.n_ratings} viewers")
    if entity.neighbours:
        lines.append(f"- similar movies: {', '.join(entity.neighbours)}")
    return "\n".join(lines)


def teacher_prompt(task: Task, entities: list) -> str:
    labels = (["Viewer"] if task.kind == "user"
              else (["Movie"] if len(entities) == 1 else ["First movie", "Second movie"]))
    blocks = [f"{label}:\n{facts_text(entity)}" for label, entity in zip(labels, entities)]
    return "\n\n".join(blocks) + f"\n\nTask: {task.instruction}"


class TeacherWriter(CachedChat):
    """Writes each target from the entity's facts, under the teacher's system prompt."""

    name = "teacher"

    def __init__(self, model: str | None = None, endpoint: str | None = None,
                 cache_path: str | Path = "teacher_cache.jsonl", batch_size: int = 8, max_new_tokens: int = 160,
                 token: str | None = None):
        super().__init__(model, endpoint, cache_path, batch_size, max_new_tokens, token)

    def write_many(self, task: Task, entity_lists: list[list]) -> list[str]:
        return self.complete([teacher_prompt(task, entities) for entities in entity_lists], SYSTEM_PROMPT,
                             label=task.name, desc=f"Teacher writes {task.name}")


__all__ = ["TeacherWriter", "teacher_prompt", "facts_text", "SYSTEM_PROMPT"]
