"""Benchmark: span label-error detection and active learning on WNUT-17 (CC BY 4.0), studio vs baselines.

Part 1, detection. 10% of the train split's entities are corrupted with a seed: half get their type swapped to
the type most confused with it, half get a boundary moved by one word (extended into a neighbouring "O" word or
shrunk, left or right, drawn uniformly among the moves that fit; a one-word entity can only be extended; an
entity where none fits is swapped instead). "Most confused" is measured with the out-of-sample model itself on
the clean labels: for entities of type a, the other type b with the most probability mass (B-b + I-b) on
their words. Out-of-sample word probabilities are then computed once per seed on the noisy labels (5-fold
studio.span_learner on studio.token_embeddings word vectors) and shared by every method:

- plain cleanlab: token_classification.filter.find_label_issues and rank.get_label_quality_scores with their
  defaults; a sentence is flagged if any of its words is, ranked by the sentence score;
- studio: studio.span_quality.run_span_quality (calibrated threshold), and its ranking cut at the number of
  sentences cleanlab flags (what the ranking alone is worth, apart from the threshold).

The studio's detector learns what an error looks like from its own synthetic corruptions (type swap, boundary
moved by one word, entity left out; studio/span_quality.py): this bench's two kinds are a subset of that error
model, so it measures the method where its assumptions hold; errors outside the model are not measured here.

A sentence is truly erroneous if any of its entities was corrupted; a word if its tag changed. Printed per
seed and as mean ± sd over seeds: precision / recall / F1 at sentence and word level, average precision of the
sentence ranking, timings (word embedding, the 5-fold fit) and the machine load (os.getloadavg()).

Part 2, active learning with the fast token learner: from 50 random labeled sentences, batches of 100 revealed on
query, up to the whole train set; random vs each uncertainty aggregation of studio.span_learner.UNCERTAINTY.
Reports the labels (sentences) needed to reach 95% of the full-data entity F1 on emerging.test.annotated
(exact-match F1, studio.span_agreement.span_metrics; argmax tags decoded with tags_to_spans) and the ratio to random,
also in words labeled (long sentences cost more to annotate). A run stops once it has reached the target.

    .venv/bin/python bench/ner_quality.py [--seeds 0 1 2] [--al-seeds 0 1 2] [--skip-al] [--cold] [--json OUT]

Word vectors are cached under bench/out/ner_cache (the first run encodes ~4,700 texts: ~1.5 min on 2 cores);
the whole default run took 7.5 min with a cold cache on 2 cores at load ~3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One BLAS thread: on a shared 2-core machine the skinny (N x F) @ (F x T) products of the fits ran faster
# single-threaded (measured 0.05 s vs 0.09 s per L-BFGS step on 81k words).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from studio.span_io import conll_to_records, read_conll  # noqa: E402
from studio.span_learner import UNCERTAINTY, TokenLearner, out_of_sample_word_probs, uncertainty  # noqa: E402
from studio.span_quality import SpanQualityConfig, run_span_quality  # noqa: E402
from studio.span_agreement import span_metrics  # noqa: E402
from studio.spans import bio_tag_names, spans_to_tags, tags_to_spans, word_offsets  # noqa: E402
from studio.token_embeddings import encode_words  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "ner_wnut17"
CACHE = ROOT / "bench" / "out" / "ner_cache"
METHODS = ("cleanlab", "studio", "studio @cleanlab count")


def load_split(name: str) -> tuple[list[str], list[list[dict]]]:
    records = conll_to_records(read_conll(DATA / name))
    return [r["text"] for r in records], [r["spans"] for r in records]


def entities(tags: list[int], names: list[str]) -> list[tuple[int, int, str]]:
    out: list[list] = []
    for w, tag in enumerate(tags):
        kind, _, label = names[tag].partition("-")
        if kind == "I" and out and out[-1][1] == w and out[-1][2] == label:
            out[-1][1] = w + 1
        elif kind in ("B", "I"):
            out.append([w, w + 1, label])
    return [tuple(e) for e in out]  # type: ignore[misc]


def most_confused(probs: list[np.ndarray], tags: list[list[int]], types: list[str], names: list[str]) -> dict:
    """type -> the other type with the most out-of-sample probability mass on its entities' words."""
    mass = np.zeros((len(types), len(types)))
    for p, t in zip(probs, tags):
        for a, b, label in entities(t, names):
            for col, other in enumerate(types):
                j = names.index(f"B-{other}")
                mass[types.index(label), col] += (p[a:b, j] + p[a:b, j + 1]).sum()
    np.fill_diagonal(mass, -1)
    return {t: types[int(mass[k].argmax())] for k, t in enumerate(types)}


def corrupt(tags: list[list[int]], names: list[str], confused: dict, *, rate: float,
            seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    noisy = [list(t) for t in tags]
    all_ents = [(i, *e) for i, t in enumerate(tags) for e in entities(t, names)]
    chosen = rng.choice(len(all_ents), int(round(rate * len(all_ents))), replace=False)
    for n, k in enumerate(chosen):
        i, a, b, label = all_ents[k]
        t = noisy[i]
        moves = [(a - 1, b)] if a > 0 and t[a - 1] == 0 else []
        moves += [(a, b + 1)] if b < len(t) and t[b] == 0 else []
        moves += [(a + 1, b), (a, b - 1)] if b - a > 1 else []
        new_label, (na, nb) = label, (a, b)
        if n % 2 == 0 or not moves:
            new_label = confused[label]
        else:
            na, nb = moves[int(rng.integers(len(moves)))]
        t[a:b] = [0] * (b - a)
        j = names.index(f"B-{new_label}")
        t[na:nb] = [j + 1] * (nb - na)
        t[na] = j
    return noisy


def prf(truth: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    tp = float((truth & flagged).sum())
    p = tp / flagged.sum() if flagged.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    return {"P": p, "R": r, "F1": 2 * p * r / (p + r) if p + r else 0.0, "flagged": int(flagged.sum())}


def cleanlab_baseline(tags: list[list[int]], probs: list[np.ndarray]) -> tuple[np.ndarray, set, np.ndarray]:
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    keep = [i for i, t in enumerate(tags) if t]
    issues = find_label_issues([tags[i] for i in keep], [probs[i] for i in keep])
    words = {(keep[i], w) for i, w in issues}
    flagged = np.zeros(len(tags), dtype=bool)
    flagged[[i for i, _ in words]] = True
    score = np.ones(len(tags))
    score[keep] = get_label_quality_scores([tags[i] for i in keep], [probs[i] for i in keep])[0]
    return flagged, words, score


def detection(texts, clean, types, names, vecs, confused, *, seed: int) -> dict:
    noisy = corrupt(clean, names, confused, rate=0.10, seed=seed)
    bad_words = {(i, w) for i, (c, n) in enumerate(zip(clean, noisy)) for w in range(len(c)) if c[w] != n[w]}
    bad = np.array([c != n for c, n in zip(clean, noisy)])
    offsets = [word_offsets(t) for t in texts]
    noisy_spans = [tags_to_spans(t, o, [names[j] for j in n]) for t, o, n in zip(texts, offsets, noisy)]
    start = time.perf_counter()
    probs = out_of_sample_word_probs(vecs, noisy, len(names), texts=texts, seed=seed)
    fit_s = time.perf_counter() - start

    def words_prf(flagged_words: set) -> dict[str, float]:
        tp = len(flagged_words & bad_words)
        p = tp / len(flagged_words) if flagged_words else 0.0
        r = tp / len(bad_words)
        return {"P": p, "R": r, "F1": 2 * p * r / (p + r) if p + r else 0.0}

    out: dict = {"seed": seed, "erroneous_sentences": int(bad.sum()), "changed_words": len(bad_words),
                 "cv_fit_s": fit_s}
    cl_flag, cl_words, cl_score = cleanlab_baseline(noisy, probs)
    out["cleanlab"] = {"sentence": prf(bad, cl_flag), "AP": average_precision_score(bad, -cl_score),
                       "word": words_prf(cl_words)}
    start = time.perf_counter()
    rep = run_span_quality(texts, noisy_spans, types, word_probs=probs, config=SpanQualityConfig(seed=seed))
    out["studio_s"] = time.perf_counter() - start
    rows = rep.sentences.sort_values("task_index")
    studio_words = {(int(i), int(w)) for i, w in
                    rep.tokens.loc[rep.tokens["studio_issue"], ["task_index", "word_index"]].to_numpy()}
    score = rows["score"].to_numpy()
    out["studio"] = {"sentence": prf(bad, rows["is_issue"].to_numpy()), "AP": average_precision_score(bad, -score),
                     "word": words_prf(studio_words), "threshold": rep.threshold, "error_rate": rep.error_rate}
    # The same ranking cut at cleanlab's number of flags: what the ranking alone is worth.
    top = np.zeros(len(score), dtype=bool)
    top[np.argsort(score, kind="stable")[:int(cl_flag.sum())]] = True
    out["studio @cleanlab count"] = {"sentence": prf(bad, top), "AP": out["studio"]["AP"]}
    return out


def print_detection(run: dict) -> None:
    print(f"\n== seed {run['seed']}: {run['erroneous_sentences']} erroneous sentences, {run['changed_words']} changed "
          f"words; 5-fold fit {run['cv_fit_s']:.1f}s, studio check {run['studio_s']:.1f}s")
    base = run["cleanlab"]["sentence"]["F1"]
    for name in METHODS:
        m = run[name]
        s, w = m["sentence"], m.get("word")
        words = f" | word P {w['P']:.3f} R {w['R']:.3f} F1 {w['F1']:.3f}" if w else ""
        extra = (f"; threshold {m['threshold']:.3f}, estimated error share {m['error_rate']:.3f}"
                 if "threshold" in m else "")
        print(f"  {name:22s} sentence P {s['P']:.3f} R {s['R']:.3f} F1 {s['F1']:.3f} (flagged {s['flagged']}, "
              f"F1 x{s['F1'] / base if base else float('nan'):.2f} vs cleanlab) AP {m['AP']:.3f}{words}{extra}")


def summarise(runs: list[dict]) -> dict:
    summary: dict = {}
    for name in METHODS:
        figures = {f"sentence_{k}": [r[name]["sentence"][k] for r in runs] for k in ("P", "R", "F1")}
        if "word" in runs[0][name]:
            figures.update({f"word_{k}": [r[name]["word"][k] for r in runs] for k in ("P", "R", "F1")})
        figures["AP"] = [r[name]["AP"] for r in runs]
        summary[name] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in figures.items()}
    print(f"\n== detection, mean ± sd over {len(runs)} seeds")
    for name, figures in summary.items():
        print(f"  {name:22s} " + "  ".join(f"{k} {m:.3f}±{s:.3f}" for k, (m, s) in figures.items()))
    ratio = summary["studio"]["sentence_F1"][0] / max(summary["cleanlab"]["sentence_F1"][0], 1e-12)
    word_ratio = summary["studio"]["word_F1"][0] / max(summary["cleanlab"]["word_F1"][0], 1e-12)
    print(f"  studio / cleanlab: sentence F1 x{ratio:.2f}, word F1 x{word_ratio:.2f}")
    summary["ratio_sentence_F1"], summary["ratio_word_F1"] = ratio, word_ratio
    return summary


def test_f1(learner: TokenLearner, vecs, texts, gold, names, types) -> float:
    probs = learner.predict_word_probs(vecs, texts=texts)
    pred = [tags_to_spans(t, word_offsets(t), [names[j] for j in p.argmax(axis=1)]) for t, p in zip(texts, probs)]
    return span_metrics(gold, pred, types)["overall"]["f1"]


def simulate(strategy: str, *, pool, test, names, types, featurizer, target: float, seed: int,
             start: int, batch: int) -> dict:
    """One run: labels revealed on query until test entity F1 reaches `target` or the pool is spent."""
    texts, vecs, tags = pool
    rng = np.random.default_rng(seed)
    labeled = np.zeros(len(texts), dtype=bool)
    labeled[rng.choice(len(texts), start, replace=False)] = True
    learner = TokenLearner(len(names), featurizer=featurizer, seed=seed)  # refits warm-start from the last
    sizes, f1s = [], []
    t0 = time.perf_counter()
    while True:
        idx = np.flatnonzero(labeled)
        learner.fit([vecs[i] for i in idx], [tags[i] for i in idx], texts=[texts[i] for i in idx])
        sizes.append(int(labeled.sum()))
        f1s.append(test_f1(learner, test[1], test[0], test[2], names, types))
        pool_idx = np.flatnonzero(~labeled)
        if f1s[-1] >= target or not len(pool_idx):
            break
        n = min(batch, len(pool_idx))
        if strategy == "random":
            picked = rng.choice(pool_idx, n, replace=False)
        else:
            probs = learner.predict_word_probs([vecs[i] for i in pool_idx], texts=[texts[i] for i in pool_idx])
            score = uncertainty(probs, method=strategy)
            picked = pool_idx[np.lexsort((pool_idx, -score))[:n]]
        labeled[picked] = True
    reached = sizes[-1] if f1s[-1] >= target else None
    words = int(sum(len(tags[i]) for i in np.flatnonzero(labeled)))
    return {"strategy": strategy, "seed": seed, "labels_to_target": reached, "words_labeled": words,
            "sizes": sizes, "f1": f1s,
            "seconds": time.perf_counter() - t0}


def active_learning(pool, test, names, types, *, seeds: list[int], strategies: list[str], start: int,
                    batch: int) -> dict:
    from studio.span_learner import TokenLearnerConfig, WordFeaturizer

    texts, vecs, tags = pool
    cfg = TokenLearnerConfig()
    featurizer = WordFeaturizer(components=cfg.components).fit(list(vecs) + list(test[1]),
                                                               list(texts) + list(test[0]))
    t0 = time.perf_counter()
    full = TokenLearner(len(names), featurizer=featurizer).fit(vecs, tags, texts=texts)
    full_f1 = test_f1(full, test[1], test[0], test[2], names, types)
    target = 0.95 * full_f1
    print(f"\n== active learning: pool {len(texts)} sentences, test {len(test[0])}; full-data test entity F1 "
          f"{full_f1:.3f} ({time.perf_counter() - t0:.1f}s), target 95% = {target:.3f}; start {start}, batch "
          f"{batch}, seeds {seeds}")
    runs = []
    for strategy in strategies:
        for seed in seeds:
            run = simulate(strategy, pool=pool, test=test, names=names, types=types, featurizer=featurizer,
                           target=target, seed=seed, start=start, batch=batch)
            runs.append(run)
            print(f"  {strategy:22s} seed {seed}: labels to 95% {run['labels_to_target'] or f'>{len(texts)}'} "
                  f"(last F1 {run['f1'][-1]:.3f}, {len(run['sizes'])} rounds, {run['seconds']:.0f}s, load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    summary = {}
    for strategy in strategies:
        reached = [r["labels_to_target"] or len(texts) for r in runs if r["strategy"] == strategy]
        words = [r["words_labeled"] for r in runs if r["strategy"] == strategy]
        summary[strategy] = {"labels_mean": float(np.mean(reached)), "labels_sd": float(np.std(reached)),
                             "per_seed": reached, "words_mean": float(np.mean(words))}
    base, base_words = summary["random"]["labels_mean"], summary["random"]["words_mean"]
    print("  sentences labeled to reach 95% of full-data F1 (mean ± sd over seeds; the pool size where not "
          "reached), and the words in them:")
    for strategy, s in summary.items():
        s["ratio_vs_random"] = s["labels_mean"] / base
        s["words_ratio_vs_random"] = s["words_mean"] / base_words
        print(f"    {strategy:22s} {s['labels_mean']:.0f} ± {s['labels_sd']:.0f} sentences x{s['ratio_vs_random']:.2f} "
              f"vs random {s['per_seed']}; {s['words_mean']:.0f} words x{s['words_ratio_vs_random']:.2f}")
    return {"full_f1": full_f1, "target": target, "summary": summary, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="corruption seeds (part 1)")
    parser.add_argument("--al-seeds", type=int, nargs="+", default=[0, 1, 2], help="seed-set seeds (part 2)")
    parser.add_argument("--strategies", default="random," + ",".join(UNCERTAINTY),
                        help="random and any of " + ", ".join(UNCERTAINTY))
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--skip-al", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--cold", action="store_true", help="encode into an empty cache (cold embedding timing)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()

    result: dict = {"load_before": os.getloadavg()}
    texts, spans = load_split("wnut17train.conll")
    test_texts, test_spans = load_split("emerging.test.annotated")
    types = sorted({s["label"] for row in spans for s in row})
    names = bio_tag_names(types)
    print(f"WNUT-17 train {len(texts)} sentences, {sum(len(s) for s in spans)} entities, types {types}; test "
          f"{len(test_texts)}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    cache = CACHE
    if args.cold:
        import tempfile

        cache = Path(tempfile.mkdtemp(prefix="ner_cold_", dir=CACHE.parent if CACHE.parent.exists() else None))
    start = time.perf_counter()
    vecs = encode_words(texts, cache_dir=cache)
    test_vecs = encode_words(test_texts, cache_dir=cache)
    result["embedding_s"], result["embedding_cold"] = time.perf_counter() - start, args.cold
    if args.cold:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
    n_words = sum(len(v) for v in vecs)
    print(f"word vectors: {n_words} train + {sum(len(v) for v in test_vecs)} test words in "
          f"{result['embedding_s']:.1f}s (" + ("cold: an empty cache" if args.cold else
                                                f"cache {CACHE}; --cold to time encoding") + ")")
    clean = [spans_to_tags(word_offsets(t), s, types) for t, s in zip(texts, spans)]

    if not args.skip_detection:
        start = time.perf_counter()
        clean_probs = out_of_sample_word_probs(vecs, clean, len(names), texts=texts, seed=0)
        result["cv_fit_clean_s"] = time.perf_counter() - start
        confused = most_confused(clean_probs, clean, types, names)
        print(f"5-fold out-of-sample word probs on clean labels ({len(texts)} sentences, {n_words} words): "
              f"{result['cv_fit_clean_s']:.1f}s; most confused type: {confused}")
        runs = []
        for seed in args.seeds:
            runs.append(detection(texts, clean, types, names, vecs, confused, seed=seed))
            print_detection(runs[-1])
        result["detection"] = {"runs": runs, "summary": summarise(runs), "most_confused": confused}
    if not args.skip_al:
        result["active_learning"] = active_learning(
            (texts, vecs, clean), (test_texts, test_vecs, test_spans), names, types, seeds=args.al_seeds,
            strategies=args.strategies.split(","), start=args.start, batch=args.batch)
    result["load_after"] = os.getloadavg()
    print(f"\nmachine load (1, 5, 15 min) before {tuple(round(x, 1) for x in result['load_before'])}, after "
          f"{tuple(round(x, 1) for x in result['load_after'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
