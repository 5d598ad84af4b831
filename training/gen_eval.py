"""Evaluation of a generation run: the fine-tuned model against its own base model, on the same held-out prompts.

Both models answer the same prompts (greedy, training/generate.py; the base model is the same weights with the
adapter switched off), and each answer is compared with the expert's reference:

- rouge_l: ROUGE-L F-measure (longest common word subsequence; rouge-score, stemmed), mean over prompts, [0, 1];
- chrf: chrF (character n-gram F-score; sacrebleu), over the whole set, [0, 100];
- embedding_similarity: cosine of the answer's and the reference's embeddings with the studio's encoder
  (studio.embeddings.encode: all-MiniLM-L6-v2, mean-pooled, unit length), mean, [-1, 1]: same meaning in other words;
- perplexity: exp(mean NLL per token) of the *references* under the model (lower = the model finds the experts'
  answers more likely; no generation involved, so it is not capped by max_new_tokens);
- mean_logprob: the answers' own mean token log-probability (the model's confidence), response_words (mean
  answer length in words; reference_words for the experts'), truncated (share of answers cut at max_new_tokens),
  generation_tokens_per_s.

Higher = better for all but perplexity. Per group (e.g. intent) where the data has groups. The prompts are at most
`limit`, chosen deterministically (seeded order, round-robin over the groups so every group gets its share).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from training.generate import Generations, Generator, ReferenceScores

MODELS = ("base", "fine_tuned")
EMBEDDING_MAX_LENGTH = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces; answers run to ~200 words


def choose_eval_rows(groups: Sequence[str], limit: int, *, seed: int) -> np.ndarray:
    """Up to `limit` row positions, sorted: a seeded shuffle of each group's rows, then one row per group in turn
    (groups in sorted order) until `limit`, so a small budget still covers every group. Same inputs, same rows."""
    groups = [str(g) for g in groups]
    if limit <= 0 or not groups:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    queues = {g: list(rng.permutation([i for i, x in enumerate(groups) if x == g])) for g in sorted(set(groups))}
    chosen: list[int] = []
    while len(chosen) < min(limit, len(groups)):
        for g in queues:
            if queues[g] and len(chosen) < limit:
                chosen.append(int(queues[g].pop(0)))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def words(text: str) -> int:
    return len(str(text).split())


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """(N,) ROUGE-L F-measure of each answer against its reference (0 for an empty answer)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.asarray([scorer.score(str(r), str(h))["rougeL"].fmeasure for h, r in zip(hypotheses, references)])


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2), in [0, 100]."""
    from sacrebleu.metrics import CHRF

    if not len(hypotheses):
        return float("nan")
    return float(CHRF().corpus_score([str(h) for h in hypotheses], [[str(r) for r in references]]).score)


def embedding_similarities(answer_sets: Sequence[Sequence[str]], references: Sequence[str], *,
                           model: str = "") -> list[np.ndarray]:
    """For each set of N answers, (N,) cosine similarities of each answer's and its reference's embedding
    (studio.embeddings.encode); one encoder load for every set."""
    from studio.embeddings import encode

    n = len(references)
    if n == 0:
        return [np.zeros(0) for _ in answer_sets]
    texts = [str(r) for r in references] + [str(a) for answers in answer_sets for a in answers]
    vectors = encode(texts, model=model, max_length=EMBEDDING_MAX_LENGTH)
    refs = vectors[:n]
    return [(vectors[n * (k + 1):n * (k + 2)] * refs).sum(axis=1).astype(np.float64) for k in range(len(answer_sets))]


def _scores(rows: np.ndarray, gen: Generations, ref: ReferenceScores, answers: dict[str, np.ndarray],
            hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """One model's figures over `rows` (positions into the evaluated prompts)."""
    if len(rows) == 0:
        return {}
    return {
        "rouge_l": float(answers["rouge_l"][rows].mean()),
        "chrf": chrf([hypotheses[i] for i in rows], [references[i] for i in rows]),
        "embedding_similarity": float(answers["embedding_similarity"][rows].mean()),
        "perplexity": ref.perplexity(rows),
        "mean_logprob": float(gen.mean_logprobs[rows].mean()),
        "response_words": float(np.mean([words(hypotheses[i]) for i in rows])),
        "truncated": float((~gen.finished[rows]).mean()),
    }


def evaluate_generation(generator: Generator, prompts: Sequence[Any], references: Sequence[str], *,
                        groups: Sequence[str] | None = None, task_ids: Sequence[int] | None = None,
                        max_new_tokens: int = 128, batch_size: int = 8, should_stop: Callable[[], bool] | None = None,
                        on_phase: Callable[[str], None] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Both models on the same N prompts (texts or chats) -> (metrics, examples).

    metrics: {"base": {...}, "fine_tuned": {...}, "per_group": {group: {"n", "base", "fine_tuned"}} (only when
    there are groups), "n_eval_prompts", "reference_words", "generation_tokens_per_s" (the fine-tuned model's),
    "eval_time_s"}; the figures are the module docstring's. examples: one row per prompt with task_id, group,
    prompt (the user's message), reference, base, fine_tuned and each model's rouge_l and mean_logprob.
    `generator` must hold the adapter (Generator.base() switches it off for the base model's turn).
    """
    started = time.perf_counter()
    n = len(prompts)
    groups = [str(g) for g in groups] if groups is not None else [""] * n
    references = [str(r) for r in references]
    generated: dict[str, Generations] = {}
    scored: dict[str, ReferenceScores] = {}

    def phase(text: str) -> Callable[[int, int], None] | None:
        if on_phase is None:
            return None
        on_phase(f"{text} (0/{n})")
        return lambda done, total: on_phase(f"{text} ({done}/{total})")

    for model in ("fine_tuned", "base"):
        name = "fine-tuned" if model == "fine_tuned" else "base"
        context = generator.base() if model == "base" else nullcontext(generator)
        with context as g:
            generated[model] = g.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                          progress=phase(f"answering with the {name} model"),
                                          should_stop=should_stop)
            scored[model] = g.score(prompts, references, batch_size=max(1, batch_size // 2),
                                    progress=phase(f"scoring the references under the {name} model"))
    if on_phase is not None:
        on_phase("comparing the answers with the references")
    similarity = embedding_similarities([generated[m].texts for m in MODELS], references)
    per_answer = {m: {"rouge_l": rouge_l(generated[m].texts, references), "embedding_similarity": sim}
                  for m, sim in zip(MODELS, similarity)}

    def figures(rows: np.ndarray) -> dict[str, dict[str, float]]:
        return {m: _scores(rows, generated[m], scored[m], per_answer[m], generated[m].texts, references)
                for m in MODELS}

    everything = figures(np.arange(n))
    for m in MODELS:
        if everything[m]:
            everything[m]["generation_tokens_per_s"] = round(generated[m].tokens_per_s, 2)
    metrics: dict[str, Any] = {
        **everything,
        "n_eval_prompts": n,
        "reference_words": float(np.mean([words(r) for r in references])) if n else float("nan"),
        "generation_tokens_per_s": round(generated["fine_tuned"].tokens_per_s, 2),
    }
    named = sorted({g for g in groups if g})
    if named:
        metrics["per_group"] = {g: {"n": int(sum(x == g for x in groups)),
                                    **figures(np.asarray([i for i, x in enumerate(groups) if x == g]))}
                                for g in named}
    metrics["eval_time_s"] = round(time.perf_counter() - started, 2)
    examples = pd.DataFrame({
        "task_id": list(task_ids) if task_ids is not None else list(range(n)),
        "group": groups,
        "prompt": [p if isinstance(p, str) else next((m["content"] for m in reversed(list(p)) if m["role"] == "user"),
                                                      "") for p in prompts],
        "reference": references,
        "base": generated["base"].texts,
        "fine_tuned": generated["fine_tuned"].texts,
        **{f"{m}_{k}": per_answer[m][k] for m in MODELS for k in ("rouge_l",)},
        **{f"{m}_mean_logprob": generated[m].mean_logprobs for m in MODELS},
    })
    return metrics, examples

