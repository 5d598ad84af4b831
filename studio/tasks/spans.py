"""Named entities: character spans with types (`<Labels>` on a `<Text>`). Target: a list of span dicts.

"No entities" is a valid answer (an empty list), not a missing label. The span operations themselves live in
studio/spans.py; this module only answers the stages' questions with them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from studio import spans as sp
from studio.tasks.base import TaskKind, UnknownLabels, Vote, margin_rows


class Spans(TaskKind):
    name = "spans"
    target_column = "spans"
    description = "named-entity (span)"
    stages = frozenset({"sync", "quality", "consensus", "review", "curate", "balance", "train", "predict", "push",
                        "active", "mlbackend"})
    hf_task_category: ClassVar[str] = "token-classification"

    @property
    def problems(self) -> dict[str, str]:  # type: ignore[override]
        return dict(sp.SPAN_PROBLEMS)

    @property
    def tag_names(self) -> list[str]:
        return sp.bio_tag_names(self.classes)

    def _raw(self, result: list[dict[str, Any]]) -> list[sp.Span]:
        return sp.spans_from_result(result, from_name=self.schema.from_name)

    def target_of(self, labels: Sequence[str], result: list[dict[str, Any]], text: str) -> list[sp.Span]:
        return sp.clean_spans(text, self._raw(result), self.classes)

    def annotation_problems(self, labels: Sequence[str], result: list[dict[str, Any]],
                            text: str) -> list[tuple[str, str]]:
        return sp.validate_spans(text, self._raw(result), self.classes)

    def combine(self, votes: Sequence[Vote]) -> tuple[list[sp.Span], float]:
        """Spans marked by more than half of the annotators (a tie is not kept: with two annotators, only the
        spans both marked); see studio.span_agreement.consensus_spans."""
        from studio.span_agreement import consensus_spans

        return consensus_spans([target for _, target in votes])

    def key(self, target: Any) -> Any:
        return tuple(sorted((int(s["start"]), int(s["end"]), str(s["label"])) for s in target))

    def decision_target(self, label: Any) -> list[sp.Span]:
        """A correction's spans: JSON text of a list of spans (what the review page writes)."""
        from studio.errors import DataError

        try:
            spans = _spans(label)
        except (TypeError, ValueError):
            raise DataError(f"A span correction must be a JSON list of spans; got {str(label)[:80]!r}.",
                            hint='write [{"start": 0, "end": 5, "label": "person"}, ...]') from None
        unknown = sorted({str(s.get("label")) for s in spans} - set(self.classes))
        if unknown or any(not {"start", "end", "label"} <= set(s) for s in spans):
            raise DataError(f"A span correction has spans without start/end/label or of unknown types {unknown}.",
                            hint=f"entity types of the config: {', '.join(self.classes)}")
        return spans

    def import_target(self, value: Any, text: str, *, row: int) -> list[sp.Span] | None:
        """A cell of character spans (a list, or JSON text: see studio.spans.spans_from_value). An empty list is a
        valid answer ("no entities"); an empty cell leaves the task unlabeled. Spans the validation report would
        list (outside the text, unknown type, ...) stop the import, naming the row."""
        if value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str) and not value):
            return None
        spans = sp.spans_from_value(value, text, row=row)
        found = sp.validate_spans(text, spans, self.classes)
        unknown = sorted({str(s["label"]) for s in spans} - set(self.classes))
        if unknown:
            raise UnknownLabels(unknown)
        if found:
            from studio.errors import DataError

            raise DataError(f"row {row}: {found[0][1]} ({found[0][0]})")
        return [{**s, "text": text[int(s["start"]):int(s["end"])]} for s in spans]

    def target_text(self, target: Any) -> str:
        return "; ".join(f"{s['text']}/{s['label']}" for s in target) or "(no entities)"

    def row_classes(self, targets: pd.Series) -> list[list[str]]:
        order = {c: i for i, c in enumerate(self.classes)}
        return [sorted({str(s["label"]) for s in _spans(v)}, key=lambda c: order.get(c, len(order)))
                for v in targets]

    def encode(self, frame: pd.DataFrame, names: list[str]) -> dict[str, pd.Series]:
        tokens, tags, spans = [], [], []
        for text, value in zip(frame["text"].astype(str), frame["spans"]):
            offsets = sp.word_offsets(text)
            row_spans = [{"start": int(s["start"]), "end": int(s["end"]), "label": str(s["label"]),
                          "text": text[int(s["start"]):int(s["end"])]} for s in _spans(value)]
            tokens.append([text[a:b] for a, b in offsets])
            tags.append(sp.spans_to_tags(offsets, row_spans, names))
            spans.append(row_spans)
        return {"tokens": pd.Series(tokens, index=frame.index, dtype=object),
                "ner_tags": pd.Series(tags, index=frame.index, dtype=object),
                "spans": pd.Series(spans, index=frame.index, dtype=object)}

    def export_features(self, names: list[str]) -> dict[str, Any]:
        from datasets import ClassLabel, List, Value

        return {"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=sp.bio_tag_names(names))),
                "spans": List({"start": Value("int64"), "end": Value("int64"), "label": Value("string"),
                               "text": Value("string")})}

    def export_counts(self, encoded: pd.DataFrame, names: list[str]) -> dict[str, int]:
        counts = {name: 0 for name in names}
        for value in encoded["spans"]:
            for s in _spans(value):
                counts[str(s["label"])] = counts.get(str(s["label"]), 0) + 1
        return counts

    def manifest_extra(self, names: list[str]) -> dict[str, Any]:
        return {"tag_names": sp.bio_tag_names(names)}

    def card_columns(self) -> str:
        return ("`tokens` (the words of the text), `ner_tags` (one BIO tag id per word, into `tag_names` of the "
                "manifest: O, B-type, I-type in the type order above) and `spans` (character spans: start, end "
                "exclusive, label, text)")

    def predict(self, predictor: Any, texts: list[str], *, progress: Any = None) -> Any:
        return predictor.predict_word_probs(texts, progress=progress)

    def from_output(self, output: Any, texts: list[str]) -> tuple[list[Any], np.ndarray]:
        """Per-word tag probabilities -> spans (each scored by its weakest word) and the task's margin: the
        lowest top-1 minus top-2 margin over its words (studio.span_learner.uncertainty; bench/ner_quality.py
        compared the aggregations)."""
        names = self.tag_names
        targets, margins = [], []
        for text, probs in zip(texts, output):
            probs = np.asarray(probs, dtype=float)
            offsets = sp.word_offsets(text)
            if len(probs) == 0:
                targets.append([])
                margins.append(1.0)
                continue
            tags = [names[i] for i in probs.argmax(axis=1)]
            targets.append(sp.tags_to_spans(text, offsets, tags, scores=probs.max(axis=1)))
            top = np.sort(probs, axis=1)[:, ::-1]
            margins.append(float((top[:, 0] - top[:, 1]).min()) if probs.shape[1] > 1 else 1.0)
        return targets, margin_rows(np.asarray(margins))

    def result(self, target: Any) -> list[dict[str, Any]]:
        return sp.spans_result(list(_spans(target)), from_name=self.schema.from_name, to_name=self.schema.to_name)


def _spans(value: Any) -> list[dict[str, Any]]:
    """Spans as stored in a frame: a list of dicts, a numpy array of dicts (parquet), or JSON text."""
    if value is None:
        return []
    if isinstance(value, str):
        return json.loads(value) if value else []
    return [dict(s) for s in list(value)]
