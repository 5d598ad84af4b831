"""Token classification (spans): sub-token alignment, long texts in pieces, entity metrics, data checks, and a
real few-step LoRA run of all-MiniLM-L6-v2 through run_training that reloads as a SpanPredictor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studio.errors import DataError, EmptyDataError, TrainingError
from studio.spans import bio_tag_names, spans_to_tags, word_offsets
from training.config import TrainConfig
from training.data import CuratedData, load_curated, validate_curated

pytestmark = pytest.mark.training

TYPES = ["person", "location"]
PEOPLE = ["Alice", "Bob", "Carol", "Dmitri", "Maria Lopez", "John Smith", "Priya"]
PLACES = ["Paris", "London", "Berlin", "Gardena", "New York", "Tokyo", "Redondo Beach"]
TEMPLATES = ["I met {p} in {l} .", "{p} flew to {l} yesterday", "we saw {p} near {l} last week",
             "{p} lives in {l}", "yesterday {p} said {l} was lovely", "the weather in {l} was bad , said {p}"]


def make_records(n: int, seed: int, start_id: int = 0) -> pd.DataFrame:
    """n sentences, each with one person and one location from the lists above (the curated spans layout)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        person, place = PEOPLE[rng.integers(len(PEOPLE))], PLACES[rng.integers(len(PLACES))]
        text = template.format(p=person, l=place)
        spans = []
        for label, value in (("person", person), ("location", place)):
            a = text.index(value)
            spans.append({"start": a, "end": a + len(value), "label": label, "text": value})
        offsets = word_offsets(text)
        rows.append({"task_id": start_id + i, "text": text, "tokens": [text[a:b] for a, b in offsets],
                     "ner_tags": spans_to_tags(offsets, spans, TYPES), "spans": spans})
    return pd.DataFrame(rows)


def write_spans_folder(folder: Path, splits: dict[str, pd.DataFrame]) -> Path:
    """manifest.json + three parquet splits, as the studio's spans export writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_parquet(folder / f"{name}.parquet")
    (folder / "manifest.json").write_text(json.dumps({
        "version_id": "ds-spans0001", "snapshot_id": "snap-spans", "task": "spans", "class_names": TYPES,
        "tag_names": bio_tag_names(TYPES), "class_weights": None,
        "counts": {name: len(frame) for name, frame in splits.items()},
    }))
    return folder


@pytest.fixture(scope="module")
def spans_folder(tmp_path_factory) -> Path:
    return write_spans_folder(tmp_path_factory.mktemp("curated") / "spans", {
        "train": make_records(60, 1), "validation": make_records(16, 2, 1000), "test": make_records(16, 3, 2000)})


@pytest.fixture(scope="module")
def minilm() -> str:
    from studio.models import resolve_model_path

    return resolve_model_path("")


# -- alignment and pieces ---------------------------------------------------------------------------------------
def test_first_sub_token_gets_the_word_tag_and_the_rest_are_ignored(minilm):
    from transformers import AutoTokenizer

    from training.tokens import IGNORE, align_labels, token_dataset

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    words, tags = ["I", "met", "Redondo", "today"], [0, 0, 3, 0]
    assert len(tokenizer.tokenize("Redondo")) == 3  # "red", "##ond", "##o": the case this test is about
    enc = tokenizer(words, is_split_into_words=True)
    labels = align_labels(enc.word_ids(), tags)
    assert labels == [IGNORE, 0, 0, 3, IGNORE, IGNORE, 0, IGNORE]  # [CLS] i met red ##ond ##o today [SEP]
    row = token_dataset(tokenizer, [words], [tags], max_length=64)[0]
    assert row["labels"] == labels and row["input_ids"] == enc["input_ids"]


def test_long_texts_are_cut_into_pieces_at_word_boundaries(minilm):
    from transformers import AutoTokenizer

    from training.tokens import split_long, token_dataset, word_pieces

    assert word_pieces([1, 2, 3, 1, 1], 4) == [(0, 2), (2, 4), (4, 5)]
    assert word_pieces([9, 1], 4) == [(0, 1), (1, 2)]  # an over-long word alone (truncated, first sub-token kept)
    assert word_pieces([], 4) == []
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    words = ["Redondo"] * 10 + ["x"] * 5  # 35 sub-tokens
    pieces = split_long(tokenizer, [words, [], ["a"]], max_length=16)  # budget 14 = 16 - [CLS] - [SEP]
    assert pieces == [(0, 0, 4), (0, 4, 8), (0, 8, 15), (2, 0, 1)]
    ds = token_dataset(tokenizer, [words], [[3] * 10 + [0] * 5], max_length=16)
    assert len(ds) == 3 and max(len(r) for r in ds["input_ids"]) <= 16
    assert sum(sum(label != -100 for label in r) for r in ds["labels"]) == 15  # every word labelled once


# -- metrics ----------------------------------------------------------------------------------------------------
def test_entity_metrics_and_type_confusion():
    from training.tokens import entity_report

    gold = [["B-person", "I-person", "O", "B-location"], ["O", "B-location", "O"]]
    pred = [["B-person", "I-person", "O", "B-person"], ["O", "O", "B-person"]]
    report = entity_report(gold, pred, types=TYPES)
    # 3 gold, 3 predicted, 1 exact match: P = R = F1 = 1/3.
    assert report["entity_f1"] == pytest.approx(1 / 3) and report["precision"] == pytest.approx(1 / 3)
    assert report["per_class"]["person"]["f1"] == pytest.approx(0.5) and report["per_class"]["location"]["f1"] == 0
    assert report["macro_f1"] == pytest.approx(0.25)
    assert report["accuracy"] == pytest.approx(4 / 7)
    confusion = report["type_confusion"]
    assert confusion["labels"] == ["person", "location", "none"]
    # person->person, location->person (overlap), location missed, one spurious person.
    assert confusion["matrix"] == [[1, 0, 0], [1, 0, 1], [1, 0, 0]]


# -- data checks ------------------------------------------------------------------------------------------------
def test_load_curated_reads_the_spans_manifest(spans_folder):
    data = load_curated(spans_folder)
    assert data.task == "spans"
    assert data.class_names == TYPES and data.tag_names == bio_tag_names(TYPES)
    assert len(data.tokens("train")) == 60 and data.ner_tags("train")[0][0] in range(5)


def test_the_task_names_the_objective_and_unknown_tasks_are_refused():
    frame = pd.DataFrame({"text": ["a"], "labels": [[1.0, 0.0]]})
    data = CuratedData(train=frame, class_names=["x", "y"], task="multi_label")
    assert data.objective.task == "multi_label" and data.targets("train").tolist() == [[1.0, 0.0]]
    with pytest.raises(TrainingError, match="own trainer"):
        CuratedData(train=frame, class_names=["x", "y"], task="spans").targets("train")
    with pytest.raises(DataError, match="Did you mean 'spans'"):
        CuratedData(train=frame, class_names=["x"], task="span")


def test_tags_not_one_per_word_name_the_split_and_row(tmp_path):
    train = make_records(8, 4)
    words = len(train.at[3, "tokens"])
    train.at[3, "ner_tags"] = list(train.at[3, "ner_tags"])[:-1]
    folder = write_spans_folder(tmp_path / "bad", {"train": train, "validation": make_records(4, 5, 100)})
    with pytest.raises(DataError, match=rf"The train split, row 3, task_id 3: 'ner_tags' has {words - 1} tags but "
                                        rf"'tokens' has {words} words"):
        load_curated(folder)


def test_other_spans_data_errors():
    good = make_records(8, 5)
    bad_tag = good.copy()
    bad_tag.at[2, "ner_tags"] = [9] * len(bad_tag.at[2, "tokens"])
    with pytest.raises(DataError, match=r"validation split, row 2.*holds 9, expected an index in \[0, 4\]"):
        validate_curated(CuratedData(train=good, validation=bad_tag, class_names=TYPES, task="spans"))
    with pytest.raises(DataError, match="no 'ner_tags' column"):
        validate_curated(CuratedData(train=good.drop(columns="ner_tags"), class_names=TYPES, task="spans"))
    wrong_words = good.copy()
    wrong_words.at[0, "tokens"] = ["not", "the", "words"] + list(good.at[0, "tokens"])[3:]
    with pytest.raises(DataError, match="are not the words of its text"):
        validate_curated(CuratedData(train=wrong_words, class_names=TYPES, task="spans"))
    no_entities = good.assign(ner_tags=[[0] * len(t) for t in good["tokens"]])
    with pytest.raises(EmptyDataError, match="no entity"):
        validate_curated(CuratedData(train=no_entities, class_names=TYPES, task="spans"))
    with pytest.raises(EmptyDataError, match="0 rows"):
        validate_curated(CuratedData(train=good.iloc[:0], class_names=TYPES, task="spans"))
    with pytest.raises(DataError, match="tag_names"):
        validate_curated(CuratedData(train=good, class_names=TYPES, task="spans", tag_names=["O", "B-x", "I-x"]))


# -- a real run -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_run(spans_folder, minilm, tmp_path_factory):
    from training.train import run_training

    cfg = TrainConfig(base_model=minilm, max_length=64, batch_size=8, eval_batch_size=32, epochs=3, max_steps=16,
                      learning_rate=3e-3)
    steps: list[tuple[int, int]] = []
    info = run_training(spans_folder, config=cfg, runs_root=tmp_path_factory.mktemp("runs"),
                        progress=lambda d, t: steps.append((d, t)))
    return info, steps


def test_lora_run_is_registered_with_entity_metrics(lora_run):
    info, steps = lora_run
    assert info.status == "succeeded"
    assert {"adapter", "tokenizer", "metrics.json"} <= {p.name for p in info.path.iterdir()}
    assert steps[-1] == (16, 16)
    labels = json.loads((info.path / "labels.json").read_text())
    assert labels == {"task": "spans", "class_names": TYPES, "tag_names": bio_tag_names(TYPES),
                      "id2label": {str(i): t for i, t in enumerate(bio_tag_names(TYPES))}}
    metrics = json.loads((info.path / "metrics.json").read_text())
    summary = metrics["summary"]
    assert summary["split"] == "test" and summary["selected"] == "lora"
    for key in ("entity_f1", "precision", "recall", "macro_f1", "accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["entity_f1"] > 0.5, summary  # names and places in fixed templates: a few steps learn them
    # Per task, the gold and predicted tags (training/compare.py scores runs again on the tasks they share).
    from training.compare import common_scores

    common = common_scores({info.id: info.path})
    assert common.n == metrics["test"]["n"]
    assert common.scores["entity F1"].iloc[0] == pytest.approx(summary["entity_f1"])
    assert set(metrics["test"]["per_class"]) == set(TYPES)
    assert sum(map(sum, metrics["test"]["type_confusion"]["matrix"])) >= 32  # >= 2 gold entities per text
    assert metrics["curve"]["eval"] and "entity_f1" in metrics["curve"]["eval"][0]
    assert metrics["lora"]["validation"]["entity_f1"] >= 0
    assert metrics["global_step"] == 16 and 0 < metrics["trainable_parameters"] < metrics["total_parameters"] / 10
    assert "Token classification" in (info.path / "README.md").read_text()
    assert info.metrics["entity_f1"] == summary["entity_f1"]  # the registry lists the summary


def test_reloaded_predictor_gives_the_recorded_scores_and_spans(lora_run, spans_folder):
    from training.predict import load_predictor
    from training.tokens import entity_summary

    info, _ = lora_run
    predictor = load_predictor(info.path)
    assert predictor.task == "spans" and predictor.class_names == TYPES and predictor.run_id == info.id
    test = load_curated(spans_folder).test
    probs = predictor.predict_word_probs(test["text"].tolist(), batch_size=5)
    assert [p.shape for p in probs] == [(len(t), 5) for t in test["tokens"]]
    np.testing.assert_allclose(np.concatenate(probs).sum(axis=1), 1.0, atol=1e-6)
    tags = predictor.tag_names
    summary = entity_summary([[tags[t] for t in row] for row in test["ner_tags"]],
                             [[tags[t] for t in p.argmax(1)] for p in probs], types=TYPES)
    recorded = json.loads((info.path / "metrics.json").read_text())["summary"]
    assert summary["entity_f1"] == pytest.approx(recorded["entity_f1"], abs=1e-9)

    texts = ["I met Alice in Paris .", "", "Bob lives in Tokyo"]
    spans = predictor.predict_spans(texts)
    assert len(spans) == 3 and spans[1] == []
    for text, found in zip(texts, spans):
        for s in found:
            assert 0 <= s["start"] < s["end"] <= len(text) and s["text"] == text[s["start"]:s["end"]]
            assert s["label"] in TYPES and 0 < s["score"] <= 1
    # A template and names it trained on: the run's test F1 is > 0.5, and these two are the easy ones.
    assert {(s["text"], s["label"]) for s in spans[0]} == {("Alice", "person"), ("Paris", "location")}, spans


def test_a_text_longer_than_max_length_gets_every_word_predicted(lora_run):
    from training.predict import load_predictor

    predictor = load_predictor(lora_run[0].path)
    text = " ".join(["I met Alice in Paris ."] * 30)  # 180 words, ~180 sub-tokens > max_length 64
    probs = predictor.predict_word_probs([text])[0]
    assert probs.shape == (180, 5)
    assert (probs.max(axis=1) > 0.2 + 1e-6).all()  # no word left at the uniform 1/5
    found = predictor.predict_spans([text])[0]
    assert sum(s["text"] == "Paris" for s in found) >= 25  # the pieces after the first are predicted too


def test_full_fine_tuning_saves_and_reloads_the_model(spans_folder, tiny_model, tmp_path):
    from training.predict import load_predictor
    from training.train import run_training

    cfg = TrainConfig(base_model=tiny_model, method="full", max_length=32, batch_size=16, max_steps=3,
                      learning_rate=1e-3)
    info = run_training(spans_folder, config=cfg, runs_root=tmp_path)
    assert (info.path / "model" / "config.json").exists() and not (info.path / "adapter").exists()
    metrics = json.loads((info.path / "metrics.json").read_text())
    assert metrics["summary"]["selected"] == "full" and metrics["trainable_parameters"] == metrics["total_parameters"]
    predictor = load_predictor(info.path)
    probs = predictor.predict_word_probs(["I met Alice in Paris ."])
    assert probs[0].shape == (6, 5)


def test_should_stop_cancels_a_spans_run_and_leaves_no_run(spans_folder, tiny_model, tmp_path):
    from training.runs import RunRegistry
    from training.train import TrainingCancelled, run_training

    cfg = TrainConfig(base_model=tiny_model, max_length=32, batch_size=8, max_steps=20)
    with pytest.raises(TrainingCancelled):
        run_training(spans_folder, config=cfg, runs_root=tmp_path, should_stop=lambda: True)
    registry = RunRegistry(tmp_path)
    assert registry.list()[0].status == "cancelled" and registry.list()[0].path is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("run-", ".tmp-"))]
