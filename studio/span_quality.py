"""Label quality for named entities: which texts' spans are likely wrong, and what the model would put instead.

Input: the texts, their given spans, the entity types and out-of-sample word probabilities (one (W, T) array per
text over `bio_tag_names(types)`, e.g. studio.span_learner.out_of_sample_word_probs). Output: a
`SpanQualityReport` of DataFrames. No I/O.

Two detections sit side by side in the report:

- plain cleanlab token classification (`cleanlab_issue`, `cleanlab_score`): confident learning on every word as
  if it were an independent example (`token_classification.filter.find_label_issues`), a text flagged when any
  of its words is, ranked by its worst word's self-confidence (`rank.get_label_quality_scores`);
- the studio's own (`is_issue`, `score`): studio/span_detect.py, built on three principles: judge decisions, not
  words; learn what an error looks like from the data itself; a threshold calibrated out of sample.

Also reported: (a) surface forms labeled with different types across the data set, (b) given spans whose
boundary the model puts one word wider or narrower.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from studio.config import ConfigSection, require
from studio.errors import ConfigError, DataError
from studio.span_detect import (Evidence, calibrate, cleanlab_baseline, decision_kind, detect, entities, retag,
                                sigmoid)
from studio.spans import Span, bio_tag_names, spans_to_tags, tags_to_spans, word_offsets


@dataclass
class SpanQualityConfig(ConfigSection):
    """threshold: "calibrated" (module docstring) or a fixed score in (0, 1): flag texts scoring below it.
    copies: corruptions per text the detector learns from; folds: cross-fitting folds; seed: both draws;
    worst_words: how many words each text lists in `worst_words`."""

    SECTION = "span_quality"
    threshold: str | float = "calibrated"
    copies: int = 3
    folds: int = 5
    seed: int = 0
    worst_words: int = 3

    def __post_init__(self) -> None:
        s = self.SECTION
        if isinstance(self.threshold, str) and self.threshold != "calibrated":
            try:  # a number from the environment arrives as text
                self.threshold = float(self.threshold)
            except ValueError:
                pass
        number = isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
        require(self.threshold == "calibrated" or (number and 0 < float(self.threshold) < 1), s, "threshold",
                self.threshold, "'calibrated' or a number in (0, 1)")
        require(isinstance(self.copies, int) and self.copies >= 1, s, "copies", self.copies, "an integer >= 1, e.g. 3")
        require(isinstance(self.folds, int) and self.folds >= 2, s, "folds", self.folds, "an integer >= 2, e.g. 5")
        require(isinstance(self.worst_words, int) and self.worst_words >= 0, s, "worst_words", self.worst_words,
                "an integer >= 0")


@dataclass
class SpanQualityReport:
    """sentences: one row per text (task_index; score: lower = more likely mislabeled; is_issue; kind of its
    worst decision: type / boundary / not_an_entity / missing; cleanlab_score, cleanlab_issue: plain cleanlab;
    worst_words [{word, given, suggested}]; given_spans; suggested_spans: the given ones with the flagged
    decisions' fixes). tokens: one row per word either method flags (given and suggested tag, error probability
    of its decision, both verdicts). surface_forms: lowercased span texts labeled with more than one type.
    boundaries: given spans the model puts one word wider or narrower (score = posterior of the given edges).
    threshold: the score at or below which a text is an issue; error_rate: the estimated share of texts with an
    error (pi of the calibration; NaN with a fixed threshold)."""

    sentences: pd.DataFrame
    tokens: pd.DataFrame
    surface_forms: pd.DataFrame
    boundaries: pd.DataFrame
    threshold: float
    error_rate: float
    tag_names: list[str] = field(default_factory=list)

    def flagged(self) -> pd.DataFrame:
        """The texts the studio flags, most likely mislabeled first."""
        return self.sentences[self.sentences["is_issue"]].sort_values("score", kind="stable")


# --- input ----------------------------------------------------------------------------------------------------

def _check_inputs(texts: Sequence[str], given_spans: Sequence[Sequence[Span]], types: Sequence[str],
                  word_probs: Sequence[np.ndarray]) -> list[np.ndarray]:
    if not types:
        raise ConfigError("no entity types given.", hint="pass the labeling config's <Labels> values")
    if not (len(texts) == len(given_spans) == len(word_probs)):
        raise DataError(f"got {len(texts)} texts, {len(given_spans)} span lists and {len(word_probs)} word-"
                        "probability arrays; expected one of each per text.",
                        hint="pass [] as the span list of a text without entities")
    n_tags = len(bio_tag_names(types))
    probs = []
    for i, (t, p) in enumerate(zip(texts, word_probs)):
        p = np.asarray(p, dtype=np.float64)
        w = len(word_offsets(str(t)))
        if p.shape != (w, n_tags):
            raise DataError(f"word_probs[{i}] has shape {p.shape}; text {i} has {w} words and the types give "
                            f"{n_tags} tags, so expected ({w}, {n_tags}).",
                            hint="compute word probs over bio_tag_names(types) for word_offsets(text)")
        if len(p) and (not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1, atol=1e-3)):
            raise DataError(f"word_probs[{i}] rows must be finite, non-negative and sum to 1.",
                            hint="pass probabilities (softmax), not logits")
        probs.append(p)
    return probs


# --- BIO helpers ------------------------------------------------------------------------------------------------


def run_span_quality(texts: Sequence[str], given_spans: Sequence[Sequence[Span]], types: Sequence[str], *,
                     word_probs: Sequence[np.ndarray], config: SpanQualityConfig | None = None) -> SpanQualityReport:
    """Find texts whose given spans are likely wrong (the method: module docstring).

    texts: N strings; given_spans: N span lists (studio.spans contract); types: entity types in config order;
    word_probs: N out-of-sample (W_i, T) arrays over bio_tag_names(types), W_i = len(word_offsets(texts[i])).
    """
    cfg = config or SpanQualityConfig()
    texts, types = [str(t) for t in texts], list(types)
    probs = _check_inputs(texts, given_spans, types, word_probs)
    names = bio_tag_names(types)
    offsets = [word_offsets(t) for t in texts]
    tags = [np.asarray(spans_to_tags(o, s, types), dtype=np.int64) for o, s in zip(offsets, given_spans)]
    ev = Evidence(texts, probs, tags, types)
    decisions, error_p, copy_scores = detect(ev, tags, cfg)
    scores = np.array([1.0 - max(p, default=0.0) for p in error_p])
    if cfg.threshold == "calibrated":
        threshold, error_rate = calibrate(scores, copy_scores)
        is_issue = scores <= threshold
    else:
        threshold, error_rate = float(cfg.threshold), float("nan")
        is_issue = scores < threshold

    cl_sentence, cl_words, cl_issues = cleanlab_baseline(tags, probs)
    sentences, token_rows = [], []
    for i, text in enumerate(texts):
        fixed, word_p = tags[i].copy(), np.full(len(tags[i]), np.nan)
        for k in np.argsort(-error_p[i], kind="stable"):
            if not is_issue[i] or 1.0 - error_p[i][k] > max(threshold, scores[i]):
                break
            edit = ev.suggest(i, tags[i], decisions[i][k])
            changed = edit != tags[i]
            if (changed & ~np.isnan(word_p)).any():
                continue  # overlaps a fix already taken for a more likely error
            fixed[changed], word_p[changed] = edit[changed], error_p[i][k]
        worst = int(np.argmax(error_p[i])) if len(error_p[i]) else None
        kind = "" if worst is None else decision_kind(tags[i], ev.suggest(i, tags[i], decisions[i][worst]), names)
        changed = np.flatnonzero(fixed != tags[i])
        cl_here = sorted(w for (k, w) in cl_issues if k == i)
        for w in sorted(set(changed.tolist()) | set(cl_here)):
            token_rows.append({"task_index": i, "word_index": w, "word": text[offsets[i][w][0]:offsets[i][w][1]],
                               "given_tag": names[tags[i][w]], "suggested_tag": names[fixed[w]],
                               "error_probability": float(word_p[w]), "studio_issue": bool(w in changed),
                               "cleanlab_issue": bool(w in cl_here), "cleanlab_score": float(cl_words[i][w])})
        order = changed[np.argsort(-word_p[changed], kind="stable")][:cfg.worst_words]
        sentences.append({
            "task_index": i, "score": float(scores[i]), "is_issue": bool(is_issue[i]), "kind": kind,
            "cleanlab_score": float(cl_sentence[i]), "cleanlab_issue": bool(cl_here), "n_words": len(offsets[i]),
            "worst_words": [{"word": text[offsets[i][w][0]:offsets[i][w][1]], "given": names[tags[i][w]],
                             "suggested": names[fixed[w]]} for w in order],
            "given_spans": [dict(s) for s in given_spans[i]],
            "suggested_spans": tags_to_spans(text, offsets[i], [names[j] for j in fixed]),
        })
    token_columns = ["task_index", "word_index", "word", "given_tag", "suggested_tag", "error_probability",
                     "studio_issue", "cleanlab_issue", "cleanlab_score"]
    return SpanQualityReport(
        sentences=pd.DataFrame(sentences), tokens=pd.DataFrame(token_rows, columns=token_columns),
        surface_forms=surface_form_table(texts, given_spans, types), boundaries=_boundary_table(ev, tags),
        threshold=float(threshold), error_rate=float(error_rate), tag_names=names)


def surface_form_table(texts: Sequence[str], given_spans: Sequence[Sequence[Span]],
                       types: Sequence[str]) -> pd.DataFrame:
    """Lowercased span texts labeled with more than one type across the data set, most spans first.

    Columns: surface, types ({type: count}, most frequent first), n (spans), majority (type), tasks (sorted
    indices of the texts with a span of it), minority_tasks (those whose span of it is not the majority type)."""
    known = set(types)
    by_form: dict[str, Counter] = defaultdict(Counter)
    tasks: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for i, (text, spans) in enumerate(zip(texts, given_spans)):
        for s in spans:
            label = str(s["label"])
            if label in known:
                form = " ".join(str(text)[int(s["start"]):int(s["end"])].lower().split())
                by_form[form][label] += 1
                tasks[form][i].add(label)
    rows = []
    for form, counts in by_form.items():
        if len(counts) > 1:
            majority = counts.most_common(1)[0][0]
            rows.append({"surface": form, "types": dict(counts.most_common()), "n": sum(counts.values()),
                         "majority": majority, "tasks": sorted(tasks[form]),
                         "minority_tasks": sorted(i for i, labels in tasks[form].items() if labels - {majority})})
    table = pd.DataFrame(rows, columns=["surface", "types", "n", "majority", "tasks", "minority_tasks"])
    return table.sort_values(["n", "surface"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _boundary_table(ev: Evidence, tags: list[np.ndarray]) -> pd.DataFrame:
    """Given spans the model's best tagging has with the same type, one word wider or narrower at an edge."""
    rows = []
    for i, given in enumerate(tags):
        text, off = ev.texts[i], ev.offsets[i]
        model = entities(ev.best[i], ev.names)
        for a, b, label in entities(given, ev.names):
            for ma, mb, mlabel in model:
                if mlabel != label or (ma, mb) == (a, b) or mb <= a or ma >= b or abs(ma - a) > 1 or abs(mb - b) > 1:
                    continue
                lo, hi = min(a, ma), max(b, mb)
                alt = retag(given, a, b, ma, mb, label, ev.names)
                span = np.arange(lo, hi)
                gain = ev.norm[i][span, given[span]] - ev.norm[i][span, alt[span]]
                change = "wider" if ma <= a and mb >= b else "narrower" if ma >= a and mb <= b else "shifted"
                rows.append({"task_index": i, "label": label, "given_text": text[off[a][0]:off[b - 1][1]],
                             "model_text": text[off[ma][0]:off[mb - 1][1]], "change": change,
                             "given_start": off[a][0], "given_end": off[b - 1][1],
                             "model_start": off[ma][0], "model_end": off[mb - 1][1],
                             "score": float(sigmoid(gain.sum()))})
    columns = ["task_index", "label", "given_text", "model_text", "change", "given_start", "given_end",
               "model_start", "model_end", "score"]
    return pd.DataFrame(rows, columns=columns).sort_values("score", kind="stable").reset_index(drop=True)
