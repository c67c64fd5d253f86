import json

import pytest

from helpers.elm import build_language_model, build_tokenizer
from helpers.hub import mocked_hub_http
from modeling_elm.data.movielens.tasks import TASKS
from modeling_elm.data.movielens.writers.teacher import TeacherWriter, teacher_prompt
from helpers.elm import HEAT, TOY_STORY, USER


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    tokenizer = build_tokenizer()
    build_language_model("llama", len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_teacher_prompt_carries_the_facts_and_the_instruction():
    prompt = teacher_prompt(TASKS["diff_than_nn"], [HEAT, TOY_STORY])
    assert "First movie:\n- title: Heat (1995)" in prompt and "Second movie:\n- title: Toy Story (1995)" in prompt
    assert "- tags viewers gave it: heist, al pacino" in prompt
    assert prompt.endswith("Task: " + TASKS["diff_than_nn"].instruction)
    assert "- favourite genres: Horror, Sci-Fi" in teacher_prompt(TASKS["user_profile"], [USER])


def test_local_teacher_writes_batches_resumes_after_a_crash_and_caches(tiny_teacher, tmp_path, monkeypatch):
    from modeling_elm.data.movielens.writers.grounded import MovieFacts

    cache = tmp_path / "teacher.jsonl"
    movies = [[MovieFacts(str(i), f"Film {i}", 1990 + i, ["Drama"])] for i in range(5)]
    pitch = TASKS["pitch"]
    writer = TeacherWriter(model=tiny_teacher, cache_path=cache, batch_size=2, max_new_tokens=4)
    real_generate, batches = writer._generate_local, []

    def killed_during_second_batch(prompts, system):
        batches.append(len(prompts))
        if len(batches) == 2:
            raise RuntimeError("killed")
        return real_generate(prompts, system)

    monkeypatch.setattr(writer, "_generate_local", killed_during_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        writer.write_many(pitch, movies)
    assert len(cache.read_text().splitlines()) == 2  # the first batch reached the disk before the crash

    resumed = TeacherWriter(model=tiny_teacher, cache_path=cache, batch_size=2, max_new_tokens=4)
    texts = resumed.write_many(pitch, movies + movies[:1])
    assert len(texts) == 6 and texts[0] == texts[5]
    assert resumed.generated == 3  # only what the crash lost
    again = TeacherWriter(model=tiny_teacher, cache_path=cache, batch_size=2, max_new_tokens=4)
    assert again.write_many(pitch, movies + movies[:1]) == texts and again.generated == 0
    assert [json.loads(line)["task"] for line in cache.read_text().splitlines()] == ["pitch"] * 5


def test_a_line_cut_short_by_a_crash_is_redone(tiny_teacher, tmp_path):
    cache = tmp_path / "teacher.jsonl"
    writer = TeacherWriter(model=tiny_teacher, cache_path=cache, max_new_tokens=3)
    writer.write_many(TASKS["summary"], [[HEAT], [TOY_STORY]])
    lines = cache.read_text().splitlines()
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    again = TeacherWriter(model=tiny_teacher, cache_path=cache, max_new_tokens=3)
    again.write_many(TASKS["summary"], [[HEAT], [TOY_STORY]])
    assert again.generated == 1


def test_endpoint_teacher_goes_through_inference_client(tmp_path):
    import httpx2

    requests = []

    def endpoint(request):
        body = json.loads(request.content)
        requests.append((str(request.url), body))
        answer = f"answer {len(requests)}: " + body["messages"][1]["content"].splitlines()[1]
        return httpx2.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "teacher",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    with mocked_hub_http(endpoint):
        writer = TeacherWriter(endpoint="http://teacher.local/v1", cache_path=tmp_path / "c.jsonl", batch_size=2)
        texts = writer.write_many(TASKS["summary"], [[HEAT], [TOY_STORY]])
    assert len(requests) == 2 and all(url == "http://teacher.local/v1/chat/completions" for url, _ in requests)
    assert requests[0][1]["messages"][0]["role"] == "system" and requests[0][1]["temperature"] == 0.0
    assert sorted(t.split(": ", 1)[1] for t in texts) == ["- title: Heat (1995)", "- title: Toy Story (1995)"]
    with mocked_hub_http(lambda request: pytest.fail("a cached answer was requested again")):
        again = TeacherWriter(endpoint="http://teacher.local/v1", cache_path=tmp_path / "c.jsonl")
        assert again.write_many(TASKS["summary"], [[HEAT], [TOY_STORY]]) == texts


def test_teacher_needs_exactly_one_back_end(tmp_path):
    with pytest.raises(ValueError, match="exactly one of model"):
        TeacherWriter(cache_path=tmp_path / "c.jsonl")
