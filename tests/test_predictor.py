"""The score predictor: reading its replies, exact match / Pearson r, labelling, the verl SFT launch."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from rlev.predictor.predict import label_dataset, predicted_values
from rlev.predictor.prompt import (
    SYSTEM_PROMPT,
    parse_score,
    prediction_metrics,
    predictor_examples,
    system_prompt,
)
from rlev.predictor.verl import write_sft_launch
from rlev.values import PREDICTED_COLUMN


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("4", 4.0),
        ("0.5", 0.5),
        (" 12 \n", 12.0),
        ("7.", 7.0),
        (".5", 0.5),
        ("3 points", 3.0),
        ("6分", 6.0),
        ("-1", -1.0),  # parsed; labelling treats it as out of range
        ("", None),
        ("four", None),
        ("4 or 5", None),
        ("4/10", None),
        ("Score: 4", None),  # the prompt asks for the number only
        ("1.2.3", None),
        (None, None),
    ],
)
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


def test_metrics_on_hand_made_predictions():
    gold = [1, 2, 4, 6, 8, 2]
    pred = [1.0, 2.0, 4.0, 5.0, None, 2.5]
    m = prediction_metrics(gold, pred)
    assert m["exact_match"] == pytest.approx(100 * 3 / 6)  # the unparsed reply is a miss
    assert (m["n"], m["parsed"], m["unparsed"]) == (6, 5, 1)
    # Pearson r over the five parsed pairs, by hand: x = 1 2 4 6 2, y = 1 2 4 5 2.5
    x, y = np.array([1, 2, 4, 6, 2.0]), np.array([1, 2, 4, 5, 2.5])
    dx, dy = x - x.mean(), y - y.mean()
    assert m["pearson_r"] == pytest.approx((dx * dy).sum() / math.sqrt((dx**2).sum() * (dy**2).sum()))
    assert m["mae"] == pytest.approx((0 + 0 + 0 + 1 + 0.5) / 5)
    assert prediction_metrics([1, 2], [None, None])["exact_match"] == 0.0
    assert math.isnan(prediction_metrics([1, 2], [3.0, 3.0])["pearson_r"])  # a constant predictor has no r
    assert prediction_metrics([1.5], [1.5])["exact_match"] == 100.0
    with pytest.raises(ValueError):
        prediction_metrics([1, 2], [1.0])


def test_prompt_is_the_papers_with_the_total():
    assert SYSTEM_PROMPT.startswith("You are a scoring assistant. Given a question and its answer, output a numeric")
    text = system_prompt(150)
    assert "up to 150 inclusive" in text and "in a 150-point exam" in text and "{" not in text
    rows = pd.DataFrame({"question": ["1+2=?"], "total": [40.0], "score": [2.0]})
    assert predictor_examples(rows) == [("1+2=?", system_prompt(40), ["2"])]


def test_predicted_values_are_in_range_and_bad_replies_are_imputed_and_counted():
    scores, values, imputed = predicted_values(["4", "0.5", "garbage", "0", "150", "100"], total=100)
    assert np.isnan(scores[2]) and scores[4] == 150
    assert ((values > 0) & (values <= 1)).all()
    assert imputed.tolist() == [False, False, True, True, True, False]
    assert values[2] == values[3] == values[4] == pytest.approx(np.median([4, 0.5, 100]) / 100)
    with pytest.raises(ValueError, match="none of the 2"):
        predicted_values(["x", "-3"], total=100)


def test_labelling_writes_predicted_value(tmp_path, monkeypatch):
    import rlev.predictor.predict as predict

    # true points 1, 2, 8; the labels of b and c are one level off (weak points 4 and 6)
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "question": ["1+1=?", "1+2+3=?", "x"],
            "score": [1.0, 2.0, 8.0],
            "total": [100.0] * 3,
            "difficulty": ["primary", "senior", "university"],
            "value": [0.01, 0.02, 0.08],
        }
    )
    rows.to_parquet(tmp_path / "train.parquet")
    replies = {"1+1=?": "1", "1+2+3=?": "3", "x": "no idea"}
    seen_totals = []

    def fake_predict(model_dir, questions, totals, *args, **kwargs):  # the model is not under test here
        seen_totals.extend(totals)
        return [replies[q] for q in questions]

    monkeypatch.setattr(predict, "predict_scores", fake_predict)
    spec = {
        "max_new_tokens": 8,
        "eval_batch": 4,
        "threads": 1,
        "device": "cpu",
        "dtype": "float32",
        "weak_points": {"primary": 1, "junior": 2, "senior": 4, "university": 6, "phd": 8},
    }
    stats = label_dataset("model", tmp_path / "train.parquet", tmp_path / "labels" / "train.parquet", spec)
    out = pd.read_parquet(tmp_path / "labels" / "train.parquet")
    assert set(seen_totals) == {100.0}
    assert out[PREDICTED_COLUMN].tolist() == pytest.approx([0.01, 0.03, 0.02])  # "no idea" -> median 2
    assert out[PREDICTED_COLUMN].between(0, 1, inclusive="right").all()
    assert out.drop(columns=["predicted_score", PREDICTED_COLUMN]).equals(rows)
    assert stats["imputed"] == 1 and stats["rows"] == 3
    saved = json.loads((tmp_path / "labels" / "label_stats.json").read_text())
    # predicted 1, 3, (imputed): right on a against the true points; right on a against the weak label too
    assert saved["versus_true_points"]["exact_match"] == pytest.approx(100 / 3)
    assert saved["versus_weak_label"]["exact_match"] == pytest.approx(100 / 3)
    assert saved["versus_weak_label"]["parsed"] == 2 and saved["versus_weak_label"]["mae"] == pytest.approx(0.5)
    assert saved["versus_true_points"]["mae"] == pytest.approx(0.5)
    assert saved["weak_label_versus_true_points"]["exact_match"] == pytest.approx(100 / 3)  # only a's label is right
    rows.assign(difficulty=["primary", "junior", "expert"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="'expert' has no points in reward.weak_points"):
        label_dataset("model", tmp_path / "bad.parquet", tmp_path / "labels" / "bad.parquet", spec)


def test_verl_sft_launch_composes_against_verl(tmp_path):
    spec = {
        "model": "Qwen/Qwen2.5-7B",
        "epochs": 2,
        "lr": 1e-5,
        "batch": 64,
        "micro_batch_per_gpu": 4,
        "max_length": 1024,
        "gpus_per_node": 8,
        "nodes": 1,
        "seed": 0,
    }
    rows = pd.DataFrame({"question": ["q1", "q2"], "total": [100.0, 150.0], "score": [5.0, 0.5]})
    script = write_sft_launch(spec, rows, tmp_path, "predictor-test")
    text = script.read_text()
    assert "-m verl.trainer.sft_trainer" in text and "trainer.total_epochs=2" in text
    assert "--nproc_per_node=8" in text
    sft = pd.read_parquet(tmp_path / "sft_train.parquet")
    turns = list(sft["messages"].iloc[1])
    assert [t["role"] for t in turns] == ["system", "user", "assistant"]
    assert turns[0]["content"] == system_prompt(150) and turns[2]["content"] == "0.5"
    composed = (tmp_path / "verl_sft_config.yaml").read_text()
    assert "messages_key: messages" in composed and "hf_model" in composed

    from rlev.predictor.verl import compose_sft_config
    from rlev.train.verl_launch import VerlConfigError

    # a misspelt key fails here, naming the override, not on the cluster
    with pytest.raises(VerlConfigError, match="rejects override trainer.total_epoch=2"):
        compose_sft_config(["trainer.total_epoch=2"])


@pytest.mark.slow
def test_tiny_predictor_trains_evaluates_and_labels(tmp_path):
    from rlev.data.noisy import generate_categories
    from rlev.data.synthetic import generate
    from rlev.predictor.local import train_local
    from rlev.predictor.predict import evaluate_predictor

    exams = pd.DataFrame(generate(8, 2, 5, seed=0)[0])
    spec = {
        "model": "tiny",
        "seed": 0,
        "epochs": 2,
        "batch": 8,
        "lr": 3e-3,
        "threads": 1,
        "device": "cpu",
        "dtype": "float32",
        "max_new_tokens": 4,
        "eval_batch": 16,
        "tiny": {
            "vocab_size": 400,
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "num_kv_heads": 1,
            "intermediate_size": 32,
            "max_position": 160,
        },
    }
    model = train_local(spec, exams[exams["split"] == "train"], tmp_path)
    exams[exams["split"] == "test"].to_parquet(tmp_path / "test.parquet")
    metrics = evaluate_predictor(model, tmp_path / "test.parquet", tmp_path / "eval", spec)
    assert metrics["n"] == 10 and metrics["parsed"] + metrics["unparsed"] == 10
    steps = [json.loads(line)["step"] for line in (tmp_path / "train_metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 9  # 2 epochs of 40 rows at batch 8
    noisy = pd.DataFrame(generate_categories(3, 2, seed=0)[0])
    noisy[noisy["split"] == "train"].to_parquet(tmp_path / "noisy.parquet")
    try:
        stats = label_dataset(model, tmp_path / "noisy.parquet", tmp_path / "labels" / "train.parquet", spec)
    except ValueError as err:  # ten steps may not teach it to reply with a number: that is reported, not hidden
        assert "none of the 15 predictor replies" in str(err)
    else:
        assert stats["rows"] == 15


def test_overlong_sft_rows_are_left_out_and_reported_before_launch(tmp_path):
    """verl's SFT dataset raises mid-training on a row over max_length (truncation=error): such rows are
    measured with verl's own dataset class before launch, left out and listed in sft_rejects.csv."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from rlev.model import build_tiny, load_policy
    from rlev.predictor.verl import SFT_REJECTS

    texts = ["1+2=? 3", system_prompt(100), "4+5+6=?"] * 10
    shape = dict(
        vocab_size=300,
        hidden_size=16,
        intermediate_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        max_position=512,
    )
    build_tiny(texts, shape, tmp_path / "tok", seed=0)
    _, tok = load_policy(tmp_path / "tok", "cpu")
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    long_q = "+".join(["7"] * 300) + "=?"
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "exam_id": ["e1", "e1", "e2"],
            "question": ["1+2=?", long_q, "4+5=?"],
            "total": [100.0] * 3,
            "score": [1.0, 8.0, 2.0],
        }
    )
    spec = {
        "model": "unused",
        "epochs": 2,
        "lr": 1e-5,
        "batch": 2,
        "micro_batch_per_gpu": 1,
        "max_length": 400,
        "gpus_per_node": 1,
        "nodes": 1,
        "seed": 0,
    }
    write_sft_launch(spec, rows, tmp_path / "out", "p", tokenizer=tok)
    kept = pd.read_parquet(tmp_path / "out" / "sft_train.parquet")
    assert [list(m)[1]["content"] for m in kept["messages"]] == ["1+2=?", "4+5=?"]
    rejects = pd.read_csv(tmp_path / "out" / SFT_REJECTS)
    assert rejects["id"].tolist() == ["b"] and rejects["exam_id"].tolist() == ["e1"]
    assert (rejects["tokens"] > 400).all() and "predictor.verl.max_length 400" in rejects["reason"].iloc[0]
    # what is left is exactly what verl's SFT reads without error
    config = OmegaConf.create({"max_length": 400, "truncation": "error", "messages_key": "messages"})
    dataset = MultiTurnSFTDataset(str(tmp_path / "out" / "sft_train.parquet"), tok, config)
    assert len(dataset) == 2 and all(dataset[i]["input_ids"].shape[0] == 400 for i in range(2))
    with pytest.raises(ValueError, match=r"all 3 examples are over predictor.verl.max_length 5 tokens"):
        write_sft_launch({**spec, "max_length": 5}, rows, tmp_path / "out2", "p", tokenizer=tok)


def test_the_predictor_never_sees_the_points_an_exam_question_states(tmp_path, monkeypatch):
    """The synthetic exams print '(6 points) ...': training examples and prompts drop it, or exact match is a copy."""
    import rlev.evaluate.generate as G
    from rlev.data.synthetic import generate
    from rlev.predictor.predict import predict_scores
    from rlev.predictor.prompt import predictor_examples, score_text

    rows = pd.DataFrame(generate(3, 0, 5, seed=0)[0])
    assert rows["question"].str.contains(r"^\(\d+ points?\) ").all()
    examples = predictor_examples(rows)
    assert all("point" not in q for q, _, _ in examples)
    assert [r[0] for _, _, r in examples] == [score_text(s) for s in rows["score"]]
    seen = []

    class Tok:
        chat_template = None

    monkeypatch.setattr(G, "load_policy", lambda *a: (type("M", (), {"eval": lambda self: self})(), Tok()))
    monkeypatch.setattr(
        G,
        "decode_greedy",
        lambda model, tok, prompts, *a: (
            seen.extend(prompts) or (["1"] * len(prompts), [1] * len(prompts), [False] * len(prompts))
        ),
    )
    predict_scores("m", rows["question"].tolist()[:2], [100, 100], 4, 8, 1)
    assert seen and all("point" not in p.split("\n", 1)[1] for p in seen)
