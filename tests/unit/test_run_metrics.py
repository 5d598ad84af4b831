"""RunMetrics: a run's metrics.json read once, typed, for classification and spans runs alike."""

from training.metrics import RunMetrics, Scores, entity_scores, model_choice_line, validation_macro_f1

CLASSIFICATION = {
    "summary": {"accuracy": 0.91, "macro_f1": 0.9, "split": "test", "selected": "lora"}, "selected": "lora",
    "test": {"per_class": {"a": {}}, "confusion_matrix": [[1]]},
    "fast_head": {"validation": {"macro_f1": 0.88, "accuracy": 0.9}}, "lora": {"validation": {"macro_f1": 0.9}},
    "train_time_s": 12.5, "train_examples_per_s": 40, "adapter_size_bytes": 900000,
}
SPANS = {
    "task": "spans", "summary": {"entity_f1": 0.3, "precision": 0.44, "recall": 0.23, "macro_f1": 0.2,
                                 "accuracy": 0.95, "split": "test", "selected": "lora"},
    "test": {"partial": {"f1": 0.38}}, "lora": {"validation": {"entity_f1": 0.45, "precision": 0.5, "recall": 0.4}},
}


def test_classification_run_reads_typed():
    m = RunMetrics.from_json(CLASSIFICATION)
    assert (m.task, m.split, m.selected, m.method) == ("classification", "test", "lora", "lora")
    assert m.summary == Scores(accuracy=0.91, macro_f1=0.9)
    assert m.report["confusion_matrix"] == [[1]] and m.adapter_size_bytes == 900000
    assert validation_macro_f1(m) == ("lora", 0.88, 0.9)
    assert model_choice_line(m) == model_choice_line(CLASSIFICATION)  # a dict is read through the same type
    assert "0.900, against 0.880" in model_choice_line(m)


def test_spans_run_and_a_summary_alone():
    m = RunMetrics.from_json(SPANS)
    assert m.is_spans and m.summary.entity_f1 == 0.3 and m.validation["lora"].entity_f1 == 0.45
    assert "fast_head" not in m.validation and m.report["partial"]["f1"] == 0.38
    assert entity_scores(m.summary) == "entity F1 0.300 (precision 0.440, recall 0.230)"
    assert "validation entity F1 0.450" in model_choice_line(m)
    summary_only = RunMetrics.from_json(SPANS["summary"])  # RunInfo.metrics holds the summary alone
    assert summary_only.is_spans and summary_only.selected == "lora" and summary_only.split == "test"
    assert RunMetrics.from_json({}).summary == Scores() and model_choice_line({}) == ""
