"""OOD benchmarks: each loader against rows in its published layout, the option shuffle, the ladder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED
from rlev.data.ood import (
    MC_COLUMNS,
    ceval_rows,
    gpqa_rows,
    load_benchmark,
    mmlu_pro_rows,
    supergpqa_rows,
    synthetic_rows,
)
from rlev.data.sources import SourceError
from rlev.evaluate.ood import extract_choice, mc_prompt

FIXTURES = Path(__file__).parent / "fixtures" / "ood"
SCHEMAS = SHARED / "data" / "ood" / "schemas.json"


def test_gpqa_options_are_shuffled_by_a_fixed_seed_and_the_gold_letter_follows():
    cfg = {"loader": "gpqa", "path": str(FIXTURES / "gpqa" / "gpqa_diamond.csv"), "split": "train", "seed": 0}
    rows = load_benchmark(cfg)
    assert tuple(rows.columns) == MC_COLUMNS and len(rows) == 3
    raw = pd.read_csv(FIXTURES / "gpqa" / "gpqa_diamond.csv")
    for (_, row), correct in zip(rows.iterrows(), raw["Correct Answer"]):
        assert row["options"][list(row["letters"]).index(row["gold_letter"])] == correct
        assert sorted(row["options"]) == sorted(raw.loc[raw["Correct Answer"] == correct].iloc[0, 2:6].str.strip())
    pd.testing.assert_frame_equal(rows, load_benchmark(cfg))  # same seed, same order
    orders = {tuple(tuple(o) for o in load_benchmark({**cfg, "seed": s})["options"]) for s in range(8)}
    assert len(orders) > 1  # the seed decides the order
    golds = {g for s in range(8) for g in load_benchmark({**cfg, "seed": s})["gold_letter"]}
    assert len(golds) > 1  # the correct answer is not always "A"
    assert rows["question"].iloc[0] == "Which particle mediates the electromagnetic force?"
    assert rows["question"].iloc[1] == "What is the chemical symbol of sodium. hint"
    assert rows["id"].iloc[0] == "recFIXTURE001" and rows["subject"].iloc[2] == "Biology"


def test_ceval_reads_val_files_only_with_subjects():
    rows = load_benchmark({"loader": "ceval", "path": str(FIXTURES / "ceval"), "split": "val"})
    assert len(rows) == 3  # dev/law_dev.csv is skipped
    assert sorted(set(rows["subject"])) == ["high_school_physics", "law"]
    law = rows[rows["subject"] == "law"].iloc[1]
    assert law["options"][list(law["letters"]).index(law["gold_letter"])] == "宪法"


def test_mmlu_pro_skips_na_options_and_keeps_letters():
    rows = load_benchmark({"loader": "mmlu_pro", "path": str(FIXTURES / "mmlu_pro"), "split": "test"})
    assert len(rows) == 3  # the validation file is not read
    first, second, third = (rows.iloc[i] for i in range(3))
    assert list(first["options"]) == ["Oxygen", "Nitrogen", "Argon", "Carbon dioxide"]
    assert "N/A" not in second["options"] and list(second["letters"])[:3] == ["A", "B", "D"]
    assert second["options"][list(second["letters"]).index(second["gold_letter"])] == "2x"
    assert third["gold_letter"] == "I" and len(third["options"]) == 10
    assert "C. " not in mc_prompt(second["question"], list(second["options"]), list(second["letters"]))


def test_supergpqa_answer_letter_up_to_j():
    rows = load_benchmark({"loader": "supergpqa", "path": str(FIXTURES / "supergpqa"), "split": "train"})
    assert rows["gold_letter"].tolist() == ["B", "J"]
    assert rows["options"].iloc[0][1] == "Mercury" and rows["subject"].iloc[0] == "Science"


@pytest.mark.skipif(not SCHEMAS.exists(), reason="../shared/data/ood/schemas.json is not here")
def test_shared_placeholder_rows_in_each_published_layout():
    schemas = json.loads(SCHEMAS.read_text())
    for name, build in [
        ("gpqa_diamond", lambda raw: gpqa_rows(raw, [1], "schemas.json", seed=0)),
        ("ceval", lambda raw: ceval_rows(raw, [1], "schemas.json", "placeholder")),
        ("mmlu_pro", lambda raw: mmlu_pro_rows(raw, [1], "schemas.json")),
        ("supergpqa", lambda raw: supergpqa_rows(raw, [1], "schemas.json")),
    ]:
        example = schemas[name]["example"]
        assert set(example) <= set(schemas[name]["columns"])
        row = build(pd.DataFrame([example])).iloc[0]
        gold_text = row["options"][list(row["letters"]).index(row["gold_letter"])]
        expected = {
            "gpqa_diamond": example.get("Correct Answer"),
            "ceval": example.get("B"),
            "mmlu_pro": "o2",
            "supergpqa": example.get("answer"),
        }[name]
        assert gold_text == expected, name
    mmlu = mmlu_pro_rows(pd.DataFrame([schemas["mmlu_pro"]["example"]]), [1], "schemas.json").iloc[0]
    assert list(mmlu["options"]) == ["o0", "o1", "o2", "o3"]


def test_a_gold_letter_outside_the_options_and_a_missing_column_are_errors():
    bad = pd.DataFrame([{"question": "q", "options": ["a", "b", "N/A"], "answer": "C"}])
    with pytest.raises(SourceError, match="row 7"):
        mmlu_pro_rows(bad, [7], "f.parquet")
    with pytest.raises(SourceError, match="answer_letter"):
        supergpqa_rows(pd.DataFrame([{"question": "q", "options": ["a"]}]), [1], "f.jsonl")


@pytest.mark.parametrize(
    "response, expected",
    [
        ("Answer: B", "B"),  # the asked-for form
        ("Let me think.\nAnswer: (C)", "C"),  # bracketed letter
        ("\\boxed{D}", "D"),  # boxed letter
        ("The answer is A. Because ...", "A"),  # a letter that starts the answer sentence
        ("option c", "C"),  # after "option", case does not matter
        ("答案是B", "B"),  # Chinese answer phrase
        ("#### 17", "B"),  # no letter: the option whose text equals the answer
        ("#### 18", None),  # no option equals it
        ("Answer: F", None),  # a letter this row does not have
        ("a lot of thinking", None),  # English "a" is not option A
        ("", None),
    ],
)
def test_extraction_ladder(response, expected):
    assert extract_choice(response, ["15", "17", "12", "19"], list("ABCD")) == expected


def test_synthetic_mc_is_seeded_and_the_gold_is_the_sum():
    rows = synthetic_rows(50, seed=3)
    pd.testing.assert_frame_equal(rows, synthetic_rows(50, seed=3))
    for _, row in rows.iterrows():
        gold = row["options"][list(row["letters"]).index(row["gold_letter"])]
        assert int(gold) == sum(int(t) for t in row["question"].rstrip("=?").split("+"))
    assert set(rows["gold_letter"]) == set("ABCD")
    assert np.isclose(rows["gold_letter"].value_counts(normalize=True).max(), 0.25, atol=0.15)


def test_synthetic_sums_have_lengths_never_trained_and_are_answered_in_the_sft_format(tmp_path, monkeypatch):
    """Table 2 at the tiny scale: free-form sums of 5 or 7 terms (training: 2, 3, 4, 6, 8), scored by the rule verifier."""
    import json

    import rlev.evaluate.generate
    from rlev.data.arithmetic import LEVELS
    from rlev.data.ood import load_benchmark
    from rlev.evaluate.ood import ood

    rows = load_benchmark({"loader": "synthetic_sums", "rows": 40, "terms": [5, 7], "seed": 7})
    n_terms = rows["question"].str.count(r"\+") + 1
    assert set(n_terms) == {5, 7} and not set(n_terms) & {t for t, _ in LEVELS.values()}
    assert (rows["subject"] == n_terms.astype(str) + " terms").all()
    from rlev.data.arithmetic import stated_points, without_points

    assert all(
        int(a) == sum(map(int, without_points(q).rstrip("=?").split("+")))
        for q, a in zip(rows["question"], rows["answer"])
    )
    assert rows["question"].map(stated_points).isin([1, 2, 4, 6, 8]).all()  # stated as on the exams
    pd.testing.assert_frame_equal(
        rows, load_benchmark({"loader": "synthetic_sums", "rows": 40, "terms": [5, 7], "seed": 7})
    )
    with pytest.raises(SourceError, match="terms"):
        load_benchmark({"loader": "synthetic_sums", "rows": 2, "terms": [1, 3]})
    rows = rows.head(4)
    rows.to_parquet(tmp_path / "rows.parquet")

    class Tok:
        chat_template = None

    seen = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens, batch_size):  # the model is not under test here
        seen.extend(prompts)
        answers = rows["answer"].tolist()
        texts = [f"#### {answers[0]}", f"1+2=3 #### {answers[1]}", f"#### {int(answers[2]) + 1}", "1+2=3 1"]
        return texts, [5, 9, 5, 16], [False, False, False, True]

    monkeypatch.setattr(
        rlev.evaluate.generate, "load_policy", lambda *a: (type("M", (), {"eval": lambda self: self})(), Tok())
    )
    monkeypatch.setattr(rlev.evaluate.generate, "decode_greedy", fake_generate)
    spec = {"threads": 1, "device": "cpu", "dtype": "float32", "eval_batch": 8, "max_new_tokens": 16}
    metrics = ood(spec, "model", tmp_path / "rows.parquet", tmp_path / "out")
    assert seen == [q + "\n" for q in rows["question"]]  # asked exactly as a training question is
    assert (metrics["acc"], metrics["chance"], metrics["truncated"], metrics["n"]) == (50.0, None, 25.0, 4)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["chance"] is None and saved["benchmark"] == "synthetic_sums"
