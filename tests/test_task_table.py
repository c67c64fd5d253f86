"""The per-task table of a many-task model: each target is checked on every seed, and a task that misses it is named."""

import json

from helpers.benchmarks import load_benchmark


def ci(mean, low=None, high=None, n=48):
    return {"mean": mean, "low": mean - 0.01 if low is None else low, "high": mean + 0.01 if high is None else high,
            "n": n}


def run(seed, summary_gap_high, review_sc):
    def task(sc, genre, refs_repeat):
        return {"real": {"nll": ci(0.5), "sc": ci(sc), "genre_f1": ci(genre), "decade_accuracy": ci(0.9),
                         "hits@10": ci(0.2), "repeat_free": ci(0.98), "no_invented_title": ci(1.0)},
                "shuffled": {"nll": ci(1.5), "sc": ci(0.45)},
                "reference": {"sc": ci(0.60), "genre_f1": ci(0.95), "decade_accuracy": ci(1.0),
                              "repeat_free": ci(refs_repeat)}}

    return {"settings": {"seed": seed},
            "tasks": {"summary": task(0.59, 0.8, 0.97), "positive_review": task(review_sc, 0.7, 1.0)},
            "gap_real_minus_shuffled": {"summary": {"nll": ci(-0.5, -0.6, summary_gap_high)},
                                        "positive_review": {"nll": ci(-1.0)}}}


def test_a_target_counts_only_when_every_seed_meets_it(tmp_path, capsys):
    module = load_benchmark("task_table")
    paths = []
    for seed, (gap_high, review_sc) in enumerate([(-0.1, 0.58), (0.02, 0.55)]):  # seed 1 misses two targets
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps(run(seed, gap_high, review_sc)))
    assert module.main(["--results", *map(str, paths), "--figure", str(tmp_path / "sc.png")]) == 0
    out = capsys.readouterr().out
    assert "| summary | 48 | -0.500 [-0.600, -0.100]; -0.500 [-0.600, 0.020] | 0.590 / 0.590 |" in out
    assert "NLL gap interval wholly below 0: 1 of 2 tasks (not: summary)" in out
    assert "SC >= references - 0.03: 1 of 2 (not: positive_review)" in out  # 0.55 < 0.60 - 0.03 at seed 1
    assert "genre F1 >= 0.75: 1 of the 2 one-movie tasks whose references state genres (not: positive_review)" in out
    assert "repeat-free >= the references': 1 of 2 (not: positive_review)" in out
    assert "no invented title >= 95%: 2 of the 2 tasks it is scored on (not: none)" in out
    assert (tmp_path / "sc.png").stat().st_size > 5000
