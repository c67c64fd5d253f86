"""The paper's tasks: 24 movie tasks (19 one-movie, 5 two-movie) and user profiles, as prompts with placeholders.

A `Task` is what the model is asked (`prompt`, with `<movie>` / `<user>` placeholders where vectors go) and what a
teacher LM is told to write (`instruction`). Targets come from a writer: `grounded.GroundedWriter` (offline,
deterministic, every statement true of the entity) or `teacher.TeacherWriter` (an LM writes from the facts).
The paper's appendix holds its exact prompts, which we could not read; names and intents follow the paper.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "one-movie", "two-movie" or "user": which entities a row is about
    prompt: str  # what the ELM reads, with one placeholder per vector
    instruction: str  # what a teacher LM is asked to write, given the facts
    interpolates: bool = False  # the two movies are mixed into one vector (one placeholder) instead of two


def _one(name: str, prompt: str, instruction: str) -> Task:
    return Task(name, "one-movie", prompt, instruction)


ONE_MOVIE_TASKS = [
    _one("summary", "Summarize the movie <movie> in a few sentences.",
         "Write a short factual summary of the movie."),
    _one("positive_review", "Write a positive review of the movie <movie>.",
         "Write a short positive review of the movie, as a viewer who enjoyed it."),
    _one("negative_review", "Write a negative review of the movie <movie>.",
         "Write a short negative review of the movie, as a viewer who disliked it."),
    _one("neutral_review", "Write a balanced review of the movie <movie>.",
         "Write a short balanced review of the movie, weighing strengths and weaknesses."),
    _one("five_positive_characteristics", "List five positive characteristics of the movie <movie>.",
         "List five positive characteristics of the movie as a numbered list."),
    _one("five_negative_characteristics", "List five negative characteristics of the movie <movie>.",
         "List five negative characteristics of the movie as a numbered list."),
    _one("long_description", "Describe the movie <movie> in detail.",
         "Write a detailed description of the movie: genre, era, themes, reception, similar movies."),
    _one("funnier", "How could the movie <movie> be made funnier?",
         "Describe how the movie could be rewritten to be funnier while keeping its core."),
    _one("sadder", "How could the movie <movie> be made sadder?",
         "Describe how the movie could be rewritten to be sadder while keeping its core."),
    _one("scarier", "How could the movie <movie> be made scarier?",
         "Describe how the movie could be rewritten to be scarier while keeping its core."),
    _one("improve", "How could the movie <movie> be improved?",
         "Suggest concrete improvements to the movie, grounded in what it is."),
    _one("movie_to_viewer", "Describe the kind of viewer who would enjoy the movie <movie>.",
         "Describe the viewer who would enjoy this movie: tastes, favourite genres, similar movies they like."),
    _one("pitch", "Pitch the movie <movie> to a studio as if it were not yet made.",
         "Write a short studio pitch for the movie, as if it were a new project."),
    _one("criticize", "Criticize the movie <movie>.",
         "Write a pointed critique of the movie's weaknesses."),
    _one("convince1", "Convince me to watch the movie <movie>.",
         "Write a persuasive paragraph urging someone to watch the movie."),
    _one("convince2", "Give me one good reason to watch the movie <movie> tonight.",
         "Give a single strong reason to watch the movie tonight."),
    _one("convince3", "Why would a friend recommend the movie <movie>?",
         "Explain, as a friend, why you recommend the movie."),
    _one("dissuade1", "Convince me not to watch the movie <movie>.",
         "Write a persuasive paragraph urging someone to skip the movie."),
    _one("dissuade2", "Give me one reason to skip the movie <movie>.",
         "Give a single strong reason to skip the movie."),
]

TWO_MOVIE_TASKS = [
    Task("similarities", "two-movie", "What do the movies <movie> and <movie> have in common?",
         "Describe what the two movies have in common."),
    Task("interpolation", "two-movie", "Describe a movie that is a blend of <movie>.",
         "Describe a new movie that blends the two movies equally.", interpolates=True),
    Task("why_like_nn", "two-movie", "I liked the movie <movie>. Why would I like the movie <movie>?",
         "Explain why someone who liked the first movie would like the second."),
    Task("diff_than_nn", "two-movie", "How is the movie <movie> different from the movie <movie>?",
         "Describe how the first movie differs from the second."),
    Task("common_with_nn", "two-movie", "Which audience would enjoy both <movie> and <movie>?",
         "Describe the audience the two movies share."),
]

USER_TASKS = [
    Task("user_profile", "user", "Describe the movie tastes of the user <user>.",
         "Describe this user's movie tastes: favourite genres and eras, movies they loved, how they rate."),
]

# Not in the paper: a one-sentence probe whose target is all vector-readable facts (genres, decade, tags) and no
# title. Small models learn to read vectors from it in minutes, where title-led targets mostly teach the format.
EXTRA_TASKS = [
    _one("what_kind", "What kind of movie is <movie>?",
         "Say in one sentence what kind of movie it is: its genres, its decade and what it is remembered for."),
    # Reconstruction (xRAG's paraphrase pretraining, for semantic vectors): the target is the text the vector was
    # encoded from, so every token of it is what the vector holds.
    _one("reconstruct", "Which movie is <movie>?",
         "Write the movie's title and year, then its genres and tags, as 'Title (year). Genres: ... Tags: ...'."),
]

TASKS: dict[str, Task] = {task.name: task for task in ONE_MOVIE_TASKS + TWO_MOVIE_TASKS + USER_TASKS + EXTRA_TASKS}
PAPER_TASK_NAMES = [task.name for task in ONE_MOVIE_TASKS + TWO_MOVIE_TASKS + USER_TASKS]
MOVIE_TASK_NAMES = [task.name for task in ONE_MOVIE_TASKS + TWO_MOVIE_TASKS]


def get_tasks(names: list[str] | None) -> list[Task]:
    """Tasks by name; `None` or `["all"]` is the paper's 25 (24 movie tasks + user profile), `["movie"]` the 24
    movie tasks; extra tasks (`what_kind`) only by name."""
    if not names or names == ["all"]:
        return [TASKS[name] for name in PAPER_TASK_NAMES]
    if names == ["movie"]:
        return [TASKS[name] for name in MOVIE_TASK_NAMES]
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}; known tasks: {sorted(TASKS)} (or 'all', 'movie').")
    return [TASKS[name] for name in names]


assert len(ONE_MOVIE_TASKS) == 19 and len(TWO_MOVIE_TASKS) == 5  # the paper's 24 movie tasks
