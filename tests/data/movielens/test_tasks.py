import re

import pytest

from modeling_elm.data.movielens.writers.grounded import GENRE_WORDS, GroundedWriter
from modeling_elm.data.movielens.tasks import MOVIE_TASK_NAMES, TASKS, get_tasks

from helpers.elm import HEAT, OBSCURE, TOY_STORY, USER

PAPER_ONE_MOVIE = [
    "summary", "positive_review", "negative_review", "neutral_review", "five_positive_characteristics",
    "five_negative_characteristics", "long_description", "funnier", "sadder", "scarier", "improve", "movie_to_viewer",
    "pitch", "criticize", "convince1", "convince2", "convince3", "dissuade1", "dissuade2",
]
PAPER_TWO_MOVIE = ["similarities", "interpolation", "why_like_nn", "diff_than_nn", "common_with_nn"]



def test_the_papers_24_movie_tasks_and_user_profiles():
    assert [t.name for t in get_tasks(["movie"])] == PAPER_ONE_MOVIE + PAPER_TWO_MOVIE == MOVIE_TASK_NAMES
    assert [t.kind for t in get_tasks(["movie"])] == ["one-movie"] * 19 + ["two-movie"] * 5
    assert TASKS["user_profile"].kind == "user" and len(get_tasks(["all"])) == 25
    with pytest.raises(ValueError, match="Unknown task"):
        get_tasks(["summary", "sumary"])


def test_every_prompt_is_distinct_and_has_one_placeholder_per_vector():
    prompts = [t.prompt for t in TASKS.values()]
    assert len(set(prompts)) == len(prompts)
    for task in TASKS.values():
        placeholders = task.prompt.count("<movie>") + task.prompt.count("<user>")
        expected = 1 if task.kind != "two-movie" or task.interpolates else 2
        assert placeholders == expected, task.name


def entities_for(task, movie=HEAT):
    return [USER] if task.kind == "user" else ([movie, TOY_STORY] if task.kind == "two-movie" else [movie])


def mentioned_genres(text: str, titles: list[str]) -> set[str]:
    for title in titles:  # a title may contain a genre word ("The War Within"); only statements count
        text = text.replace(title, "")
    text = re.sub(r'"[^"]*"', "", text)  # so may a quoted tag ("dark comedy")
    return {g for g, word in GENRE_WORDS.items() if re.search(rf"\b{re.escape(word.lower())}\b", text.lower())}


@pytest.mark.parametrize("detail", ["brief", "full"])
@pytest.mark.parametrize("movie", [HEAT, OBSCURE], ids=["heat", "no-genre-no-year"])
def test_grounded_targets_are_distinct_non_empty_and_true(detail, movie):
    writer = GroundedWriter(detail)
    targets = {name: writer.write(task, entities_for(task, movie)) for name, task in TASKS.items()}
    assert all(t.strip() and "{" not in t and "None" not in t for t in targets.values()), targets
    assert len(set(targets.values())) == len(targets)  # a review is not a summary
    for name, text in targets.items():
        task = TASKS[name]
        entities = entities_for(task, movie)
        if task.kind == "user":
            allowed = set(USER.favourite_genres) | {USER.least_favourite_genre}
            titles = USER.loved_movies
        else:
            allowed = {g for e in entities for g in e.genres}
            titles = [e.title for e in entities] + [n for e in entities for n in e.neighbours]
        assert mentioned_genres(text, titles) <= allowed, (name, text)
        decades = set(re.findall(r"\b(\d{4}s)\b", text))
        true_decades = ({e.decade for e in entities if getattr(e, "decade", None)}
                        | set(getattr(entities[0], "favourite_decades", [])))
        assert decades <= true_decades, (name, text)
        for year in re.findall(r"\((\d{4})\)", text):
            assert int(year) in {getattr(e, "year", None) for e in entities}, (name, text)


def test_brief_targets_are_short_and_full_ones_say_more():
    brief, full = GroundedWriter("brief"), GroundedWriter("full")
    for task in get_tasks(["movie"]):
        short = brief.write(task, entities_for(task))
        assert len(short.split()) <= 45, (task.name, short)
        assert len(full.write(task, entities_for(task))) >= len(short)


def test_facts_stated_match_the_entity():
    writer = GroundedWriter("full")
    summary = writer.write(TASKS["summary"], [HEAT])
    assert summary.startswith("Heat (1995) is an action, crime and thriller film from the 1990s")
    assert '"heist"' in summary and "3.9/5 from 104 ratings" in summary and "Ronin" in summary
    profile = writer.write(TASKS["user_profile"], [USER])
    assert "horror and science fiction" in profile and "1980s" in profile and "Alien" in profile
    assert "rate generously (4.2/5" in profile and "romance" in profile
    assert "The War Within is a genre-defying film" in writer.write(TASKS["summary"], [OBSCURE])


def test_title_free_profiles_state_only_the_users_favourites():
    titled = GroundedWriter("brief").write(TASKS["user_profile"], [USER])
    free = GroundedWriter("brief", titles=False).write(TASKS["user_profile"], [USER])
    assert "Alien" in titled and not any(title in free for title in USER.loved_movies)
    assert free.startswith("This user loves horror and science fiction") and "1980s" in free
    assert free == titled.split(" Favourites include")[0]


def test_bad_detail_is_refused():
    with pytest.raises(ValueError, match="detail must be 'brief' or 'full'"):
        GroundedWriter("medium")


def test_the_what_kind_probe_states_only_vector_readable_facts_and_is_not_in_all():
    from modeling_elm.data.movielens.tasks import TASKS, get_tasks

    assert "what_kind" not in {task.name for task in get_tasks(["all"])} and len(get_tasks(["all"])) == 25
    text = GroundedWriter("brief").write(TASKS["what_kind"], [HEAT])
    assert ("Heat" not in text and "1990s" in text
            and {"action", "crime", "thriller"} <= set(text.lower().replace(",", "").split()))
    assert '"heist"' in text
