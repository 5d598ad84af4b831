"""The studio's span-error detector behind studio/span_quality.py: evidence per entity decision, learned error
model, out-of-sample threshold. Three principles:

  1. **Judge decisions, not words.** An annotator decides on entities: that one exists, where it starts and
     stops, its type. Each candidate decision is one row of evidence: every given entity, and every entity of
     the model's best valid BIO tagging (Viterbi; "I-x" only continues an "x") that the given tags leave out.
     Its features (`FEATURES`) separate the questions: is it an entity at all, which type given that it is one,
     does each edge word belong to it as much as its core does, do the words just outside want in, do the B/I
     tags fit, and what the same lowercased surface form is labeled as in the other texts. A weak model that
     misses many entities (low recall) then does not make every entity it missed look mislabeled: the type
     question is asked conditionally on the words being an entity.
  2. **Learn what an error looks like from the data itself.** Text i's probabilities come from a model that
     never saw text i, so they do not change when text i's labels do: corrupting its labels and recomputing the
     features shows exactly how a wrong annotation of text i would look. Every text with entities gets `copies`
     corruptions of the common kinds of annotation error (`KINDS`: the type swapped, drawn in proportion to the
     model's measured type confusion; a boundary moved by one word; an entity left out), one kind per copy,
     uniformly. A gradient-boosted classifier separates the corrupted decisions from the given ones
     (positive-unlabeled learning: the given ones are mostly, not all, right), cross-fitted by text so no text
     is scored by a classifier that saw it. A text's score is 1 - the highest error probability of its decisions
     (lower = more likely mislabeled).
  3. **A threshold calibrated out of sample.** The given texts are a mixture of clean ones and a share pi with
     errors, the corrupted copies a sample of texts with errors. pi is estimated by best-bin mixture-proportion
     estimation (Garg et al., NeurIPS 2021: the lowest upper bound of F_given(s) / F_corrupted(s) over score
     cut-offs s), and the threshold is the cut-off maximising the F1 this implies,
     ``F1(s) = 2 pi F_corrupted(s) / (pi + F_given(s))``.

Nothing is fitted to a particular data set: the error model is the standard taxonomy, everything else is
estimated from the data at hand. Suggestions: a flagged decision's suggested fix is the single edit (another type,
an edge moved by one word, no entity; for a missed one, the model's entity) that the class-normalised word
probabilities (p_j / t_j, t_j = the mean probability of tag j on words labeled j: cleanlab's per-class thresholds)
like best over the entity and its neighbours.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from studio.spans import bio_tag_names, word_offsets

if TYPE_CHECKING:
    from studio.span_quality import SpanQualityConfig

_FLOOR = 1e-9  # probabilities are clipped here before logs: one zero cannot decide a decision on its own
KINDS = ("type", "boundary", "missing")  # the corruptions the detector learns from
#: One row per candidate decision (an entity [a, b) of type t); NaN where a feature does not apply.
FEATURES = (
    "type_log_odds",  # log mean mass of t over its words - log of the best other type's (B- + I-)
    "entity_log_odds_mean",  # mean over its words of log P(not O) - log P(O)
    "entity_log_odds_min",
    "left_edge_vs_core",  # entity log-odds of the first word - the highest of its words (0 for one word)
    "right_edge_vs_core",
    "left_outside",  # log P(word a-1 is a t word) - log P(O), where the tags leave that word "O"
    "right_outside",
    "first_word_b_vs_i",  # log P(B-t) - log P(I-t) on the first word
    "inner_words_i_vs_b",  # lowest log P(I-t) - log P(B-t) over the other words
    "n_words",
    "worst_word_log_prob",  # lowest log P(given tag) over the entity and its two neighbours
    "surface_votes",  # log(1 + other texts' spans of this form as t) - log(1 + as the most frequent other type)
    "surface_count",  # log(1 + other texts' spans of this form)
    "missed",  # 1: an entity of the model's tagging the given tags leave out
    "first_in_text",
    "type_index",
)


def _transitions(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(T, T) allowed[prev, cur] and (T,) allowed_start: an I-x tag only continues B-x or I-x."""
    allowed = np.ones((len(names), len(names)), dtype=bool)
    start = np.ones(len(names), dtype=bool)
    for j, name in enumerate(names):
        if name.startswith("I-"):
            allowed[:, j] = [p in (f"B-{name[2:]}", name) for p in names]
            start[j] = False
    return allowed, start


def _viterbi(score: np.ndarray, allowed: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(W,) tag ids maximising the summed per-word log-scores over valid BIO sequences."""
    w, n = score.shape
    if w == 0:
        return np.zeros(0, dtype=np.int64)
    penalty = np.where(allowed, 0.0, -np.inf)
    best = np.where(start, score[0], -np.inf)
    back = np.zeros((w, n), dtype=np.int64)
    for k in range(1, w):
        cand = best[:, None] + penalty
        back[k] = cand.argmax(axis=0)
        best = cand.max(axis=0) + score[k]
    path = np.zeros(w, dtype=np.int64)
    path[-1] = int(best.argmax())
    for k in range(w - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    return path


def entities(tags: Sequence[int], names: list[str]) -> list[tuple[int, int, str]]:
    """(first word, end word exclusive, type) of each entity in a tag sequence (I- without B- starts one)."""
    out: list[list[Any]] = []
    for w, tag in enumerate(tags):
        kind, _, label = names[int(tag)].partition("-")
        if kind == "I" and out and out[-1][1] == w and out[-1][2] == label:
            out[-1][1] = w + 1
        elif kind in ("B", "I"):
            out.append([w, w + 1, label])
    return [(a, b, lab) for a, b, lab in out]


def retag(tags: np.ndarray, a: int, b: int, na: int, nb: int, label: str | None, names: list[str]) -> np.ndarray:
    """A copy of `tags` with entity [a, b) replaced by [na, nb) of `label` (None: removed)."""
    new = tags.copy()
    new[a:b] = 0
    if label is not None:
        j = names.index(f"B-{label}")
        new[na:nb] = j + 1
        new[na] = j
    return new


def sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# --- evidence per decision --------------------------------------------------------------------------------------

Decision = tuple[int, int, str, bool]  # (first word, end word, type, missed)


class Evidence:
    """Per-text probabilities, the model's best tagging and surface-form counts; features of any tagging."""

    def __init__(self, texts: list[str], probs: list[np.ndarray], tags: list[np.ndarray], types: list[str]) -> None:
        self.texts, self.probs, self.types = texts, probs, types
        self.names = bio_tag_names(types)
        self.b_id = {t: self.names.index(f"B-{t}") for t in types}
        self.offsets = [word_offsets(t) for t in texts]
        flat_p = np.concatenate(probs) if probs else np.zeros((0, len(self.names)))
        flat_y = np.concatenate(tags) if tags else np.zeros(0, dtype=np.int64)
        # cleanlab's per-class thresholds t_j = mean p_j over words labeled j (an unused tag keeps 1).
        self.thresholds = np.array([flat_p[flat_y == j, j].mean() if (flat_y == j).any() else 1.0
                                    for j in range(len(self.names))])
        self.log = [np.log(np.clip(p, _FLOOR, 1.0)) for p in probs]
        self.norm = [lp - np.log(np.clip(self.thresholds, _FLOOR, 1.0)) for lp in self.log]
        allowed, start = _transitions(self.names)
        self.best = [_viterbi(s, allowed, start) for s in self.norm]
        self.surface = [Counter((self.form(i, a, b), lab) for a, b, lab in entities(g, self.names))
                        for i, g in enumerate(tags)]
        self.surface_total = sum(self.surface, Counter())

    def form(self, i: int, a: int, b: int) -> str:
        off = self.offsets[i]
        return " ".join(self.texts[i][off[a][0]:off[b - 1][1]].lower().split())

    def _elsewhere(self, i: int, form: str, label: str) -> int:
        return self.surface_total[(form, label)] - self.surface[i][(form, label)]

    def decisions(self, i: int, tags: np.ndarray) -> list[Decision]:
        out: list[Decision] = [(a, b, lab, False) for a, b, lab in entities(tags, self.names)]
        out += [(a, b, lab, True) for a, b, lab in entities(self.best[i], self.names) if not tags[a:b].any()]
        return out

    def features(self, i: int, tags: np.ndarray, decisions: list[Decision]) -> np.ndarray:
        p, lp = self.probs[i], self.log[i]
        rows = np.full((len(decisions), len(FEATURES)), np.nan)
        if not decisions:
            return rows
        w = len(tags)
        exist = np.log(np.clip(1 - p[:, 0], _FLOOR, 1.0)) - lp[:, 0]
        for r, (a, b, label, missed) in enumerate(decisions):
            j, k = self.b_id[label], self.types.index(label)
            mass = np.array([(p[a:b, self.b_id[t]] + p[a:b, self.b_id[t] + 1]).mean() for t in self.types])
            other = np.delete(mass, k).max() if len(mass) > 1 else _FLOOR
            core = exist[a:b]
            window = np.arange(max(a - 1, 0), min(b + 1, w))
            form = self.form(i, a, b)
            same = self._elsewhere(i, form, label)
            others = [self._elsewhere(i, form, t) for t in self.types if t != label]
            rows[r] = [
                np.log(mass[k] + _FLOOR) - np.log(other + _FLOOR), core.mean(), core.min(),
                core[0] - core.max(), core[-1] - core.max(),
                np.log(p[a - 1, j] + p[a - 1, j + 1] + _FLOOR) - lp[a - 1, 0] if a > 0 and tags[a - 1] == 0 else np.nan,
                np.log(p[b, j] + p[b, j + 1] + _FLOOR) - lp[b, 0] if b < w and tags[b] == 0 else np.nan,
                lp[a, j] - lp[a, j + 1],
                (lp[a + 1:b, j + 1] - lp[a + 1:b, j]).min() if b - a > 1 else np.nan,
                b - a, lp[window, tags[window]].min(),
                np.log1p(same) - np.log1p(max(others, default=0)), np.log1p(same + sum(others)),
                float(missed), float(a == 0), float(k),
            ]
        return rows

    def suggest(self, i: int, tags: np.ndarray, decision: Decision) -> np.ndarray:
        """The single edit of `decision` the class-normalised word probabilities like best (module docstring)."""
        a, b, label, missed = decision
        if missed:
            return retag(tags, a, a, a, b, label, self.names)
        w, norm = len(tags), self.norm[i]
        edits = [(a, b, t) for t in self.types if t != label] + [(a, b, None)]
        edits += [(a - 1, b, label)] if a > 0 and tags[a - 1] == 0 else []
        edits += [(a, b + 1, label)] if b < w and tags[b] == 0 else []
        edits += [(a + 1, b, label), (a, b - 1, label)] if b - a > 1 else []
        window = np.arange(max(a - 1, 0), min(b + 1, w))

        def gain(edit: tuple[int, int, str | None]) -> float:
            new = retag(tags, a, b, *edit, self.names)
            return float((norm[window, new[window]] - norm[window, tags[window]]).sum())

        return retag(tags, a, b, *max(edits, key=gain), self.names)


# --- the detector -----------------------------------------------------------------------------------------------

def _type_confusion(ev: Evidence, tags: list[np.ndarray]) -> np.ndarray:
    """(K, K) row-stochastic: for entities given type a, the model's probability mass (B- + I-) on each other
    type b over their words; the diagonal is 0, a row without evidence uniform over the other types."""
    k = len(ev.types)
    mass = np.zeros((k, k))
    for p, t in zip(ev.probs, tags):
        for a, b, label in entities(t, ev.names):
            for col, other in enumerate(ev.types):
                mass[ev.types.index(label), col] += (p[a:b, ev.b_id[other]] + p[a:b, ev.b_id[other] + 1]).sum()
    np.fill_diagonal(mass, 0.0)
    mass[mass.sum(axis=1) <= 0] = 1.0
    np.fill_diagonal(mass, 0.0)
    return mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-12)


def _corrupt(tags: np.ndarray, names: list[str], types: list[str], confusion: np.ndarray,
             rng: np.random.Generator) -> np.ndarray | None:
    """One copy of `tags` with one annotation error of a kind drawn uniformly from KINDS; None without entities.
    A boundary error where no move fits (a one-word entity between two others) becomes a type swap."""
    ents = entities(tags, names)
    if not ents:
        return None
    a, b, label = ents[int(rng.integers(len(ents)))]
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind == "missing":
        return retag(tags, a, b, a, b, None, names)
    moves = [(a - 1, b)] if a > 0 and tags[a - 1] == 0 else []
    moves += [(a, b + 1)] if b < len(tags) and tags[b] == 0 else []
    moves += [(a + 1, b), (a, b - 1)] if b - a > 1 else []
    if kind == "boundary" and moves:
        return retag(tags, a, b, *moves[int(rng.integers(len(moves)))], label, names)
    if len(types) < 2:
        return None
    other = types[int(rng.choice(len(types), p=confusion[types.index(label)]))]
    return retag(tags, a, b, a, b, other, names)


def detect(ev: Evidence, tags: list[np.ndarray], cfg: SpanQualityConfig
            ) -> tuple[list[list[Decision]], list[np.ndarray], np.ndarray]:
    """(decisions per text, their error probabilities, sentence scores of the corrupted copies)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    n = len(tags)
    rng = np.random.default_rng(cfg.seed)
    confusion = _type_confusion(ev, tags)
    decisions = [ev.decisions(i, tags[i]) for i in range(n)]
    given = [ev.features(i, tags[i], decisions[i]) for i in range(n)]
    # Each copy keeps the given decisions it still has (scored as given) and adds the ones the error created.
    copies: list[tuple[int, list[int], np.ndarray]] = []
    for i in range(n):
        index = {d: k for k, d in enumerate(decisions[i])}
        for _ in range(cfg.copies):
            bad = _corrupt(tags[i], ev.names, ev.types, confusion, rng)
            if bad is None:
                continue
            now = ev.decisions(i, bad)
            new = [d for d in now if d not in index]
            copies.append((i, [index[d] for d in now if d in index], ev.features(i, bad, new)))
    fold = np.random.default_rng(cfg.seed).permutation(n) % cfg.folds
    given_p = [np.zeros(len(d)) for d in decisions]
    copy_p = [np.zeros(len(c[2])) for c in copies]
    width = len(FEATURES)
    for k in range(cfg.folds):
        x_given = [given[i] for i in range(n) if fold[i] != k]
        x_bad = [c[2] for c in copies if fold[c[0]] != k]
        x = np.concatenate(x_given + x_bad) if x_given or x_bad else np.zeros((0, width))
        y = np.r_[np.zeros(sum(len(g) for g in x_given)), np.ones(sum(len(b) for b in x_bad))]
        if len(np.unique(y)) < 2:
            continue  # nothing to learn from in this fold: its decisions keep error probability 0
        model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                               min_samples_leaf=20, random_state=cfg.seed).fit(x, y)
        for i in np.flatnonzero(fold == k):
            if len(given[i]):
                given_p[i] = model.predict_proba(given[i])[:, 1]
        for c, (i, _, rows) in enumerate(copies):
            if fold[i] == k and len(rows):
                copy_p[c] = model.predict_proba(rows)[:, 1]
    copy_scores = np.array([1.0 - max([*copy_p[c], *given_p[i][kept]], default=0.0)
                            for c, (i, kept, _) in enumerate(copies)])
    return decisions, given_p, copy_scores


def calibrate(given: np.ndarray, corrupted: np.ndarray, *, delta: float = 0.1,
               gamma: float = 0.01) -> tuple[float, float]:
    """(threshold, pi): best-bin estimate of the share pi of given texts with an error (Garg et al. 2021), then
    the score cut-off maximising the implied F1 = 2 pi F_c / (pi + F_g). F = share of scores <= the cut-off."""
    if len(given) == 0 or len(corrupted) == 0:
        return 0.0, float("nan")
    cuts = np.unique(np.quantile(np.concatenate([given, corrupted]), np.linspace(0, 1, 2001)))
    f_g = np.searchsorted(np.sort(given), cuts, side="right") / len(given)
    f_c = np.searchsorted(np.sort(corrupted), cuts, side="right") / len(corrupted)
    slack = np.sqrt(np.log(4 / delta) / (2 * len(given))) + np.sqrt(np.log(4 / delta) / (2 * len(corrupted)))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(f_c > 0, f_g / f_c + (1 + gamma) * slack / f_c, np.inf)
    best = int(np.argmin(bound))
    pi = float(np.clip(f_g[best] / f_c[best], 0.0, 1.0)) if f_c[best] > 0 else 0.0
    f1 = 2 * pi * f_c / (pi + f_g + 1e-12)
    return float(cuts[int(np.argmax(f1))]), pi


# --- the report -------------------------------------------------------------------------------------------------

def decision_kind(given: np.ndarray, fixed: np.ndarray, names: list[str]) -> str:
    changed = np.flatnonzero(given != fixed)
    if not len(changed):
        return ""
    lo, hi = changed.min(), changed.max() + 1
    g, f = entities(given[lo:hi], names), entities(fixed[lo:hi], names)
    if not f:
        return "not_an_entity"
    if not g:
        return "missing" if not given[max(lo - 1, 0):hi + 1].any() else "boundary"
    return "type" if [e[:2] for e in g] == [e[:2] for e in f] else "boundary"


def cleanlab_baseline(tags: list[np.ndarray], probs: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], set]:
    """Plain cleanlab token classification with its defaults: sentence scores, word scores, flagged (i, w)."""
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    keep = [i for i, t in enumerate(tags) if len(t)]
    sentence, words = np.ones(len(tags)), [np.ones(len(t)) for t in tags]
    if not keep:
        return sentence, words, set()
    labels, p = [tags[i].tolist() for i in keep], [probs[i] for i in keep]
    s, w = get_label_quality_scores(labels, p)
    sentence[keep] = s
    for i, series in zip(keep, w):
        words[i] = series.to_numpy()
    return sentence, words, {(keep[i], j) for i, j in find_label_issues(labels, p, n_jobs=1)}
