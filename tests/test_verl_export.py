"""verl export: the parquet file is read back by verl's own RLHFDataset with nothing lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlev.data.sources import canonical_frame, load_source
from rlev.data.validate import validate_records
from rlev.data.verl_export import VERL_COLUMNS, to_verl_frame, write_verl_parquet

FIXTURES = Path(__file__).resolve().parent / "fixtures"

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_tokenizer():
    """A byte-level BPE tokenizer trained in memory (no download), with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|pad|>", "<|eos|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["What is 2+3? Answer: 5", "计算 2+3。", "system user assistant"], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|pad|>", chat_template=CHAT_TEMPLATE
    )


def validated() -> pd.DataFrame:
    frame = canonical_frame(
        {
            "id": ["q-1", "q-2", "q-3"],
            "exam_id": ["e-1", "e-1", "e-2"],
            "question": ["What is 2+3?", "计算 2+3。", "Name a prime."],
            "system": ["Be brief.", "", ""],
            "answer": ["5", "5", "2"],
            "score": [3, "1.5", 8],
            "total": [150, 150, 100],
            "difficulty": ["easy", None, "hard"],
            "split": ["train", "train", None],
            "source_file": ["x.jsonl"] * 3,
            "source_row": [1, 2, 3],
        }
    )
    return validate_records(frame).kept


def test_frame_layout_and_uniform_extra_info():
    out = to_verl_frame(validated(), data_source="rlev/test")
    assert tuple(out.columns) == VERL_COLUMNS
    assert out.loc[0, "prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+3?"},
    ]
    assert out.loc[1, "prompt"] == [{"role": "user", "content": "计算 2+3。"}]  # no empty system turn
    assert out.loc[2, "reward_model"] == {"style": "rule", "ground_truth": "2"}
    keys = [tuple(e) for e in out["extra_info"]]
    assert len(set(keys)) == 1
    assert keys[0] == ("index", "id", "exam_id", "question", "value", "score", "total", "difficulty", "split")
    assert out.loc[1, "extra_info"]["difficulty"] == "" and out.loc[2, "extra_info"]["split"] == ""
    assert out.loc[1, "extra_info"]["value"] == pytest.approx(0.01)
    assert out.loc[1, "extra_info"]["question"] == "计算 2+3。"  # what an LLM judge is shown
    assert [e["index"] for e in out["extra_info"]] == [0, 1, 2]


def test_unvalidated_records_are_refused():
    raw = load_source({"source": "table", "path": str(FIXTURES / "overfull_exam.jsonl")})
    with pytest.raises(ValueError, match="missing column.*value"):
        to_verl_frame(raw, data_source="x")


def test_parquet_schema_is_struct(tmp_path):
    path = write_verl_parquet(validated(), tmp_path / "train.parquet", data_source="rlev/test")
    schema = pq.read_schema(path)
    assert pa.types.is_struct(schema.field("extra_info").type)
    assert schema.field("extra_info").type.field("value").type == pa.float64()
    assert schema.field("extra_info").type.field("index").type == pa.int64()
    assert pa.types.is_list(schema.field("prompt").type)


def test_round_trip_through_verl_rlhf_dataset(tmp_path, monkeypatch):
    import datasets
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    # Keep the datasets cache inside the test's folder.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    records = validated()
    path = write_verl_parquet(records, tmp_path / "train.parquet", data_source="rlev/test")
    tokenizer = tiny_tokenizer()
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "max_prompt_length": 512,
            "filter_overlong_prompts": True,  # runs apply_chat_template on every row
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "verl_cache"),
        }
    )
    dataset = RLHFDataset(data_files=str(path), tokenizer=tokenizer, config=config)
    assert len(dataset) == 3
    for i in range(3):
        row = dataset[i]
        text = tokenizer.apply_chat_template(row["raw_prompt"], add_generation_prompt=True, tokenize=False)
        assert records.loc[i, "question"] in text
        assert row["data_source"] == "rlev/test"
        assert row["reward_model"]["ground_truth"] == records.loc[i, "answer"]
        extra = row["extra_info"]
        assert extra["id"] == records.loc[i, "id"] and extra["exam_id"] == records.loc[i, "exam_id"]
        assert extra["value"] == pytest.approx(records.loc[i, "value"])
        assert extra["score"] == pytest.approx(records.loc[i, "score"])
        assert row["index"] == i
    first = tokenizer.apply_chat_template(dataset[0]["raw_prompt"], add_generation_prompt=True, tokenize=False)
    assert first == "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 2+3?<|end|>\n<|assistant|>\n"
    assert dataset[2]["extra_info"]["split"] == "" and dataset[1]["extra_info"]["difficulty"] == ""
