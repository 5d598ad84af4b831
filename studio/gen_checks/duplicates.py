"""Duplicate prompts (exact after normalising, near by embedding) and near-duplicate prompts answered differently.

Groups, not pairs: prompts are linked when their keys (`normalise_prompt`) are equal or their cosine similarity is
at least the threshold among each prompt's k nearest neighbours (an exact search in blocks, never a dense T x T
matrix), and a group is a connected component of those links. Ids are numbered by first task, so they are stable
for the same input; curation can pass them as `groups` to keep a group inside one split.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from studio.checks.neighbours import KnnGraph
from studio.gen_checks.base import (CheckResult, GenerationCheck, GenerationContext, issue_frame,
                                    register_generation_check, severity, short)
from studio.gen_checks.text import normalise_prompt


def exact_keys(prompts: Sequence[str]) -> np.ndarray:
    """(T,) int: the first index with the same `normalise_prompt` key (a prompt's own index when it is unique)."""
    first: dict[str, int] = {}
    return np.array([first.setdefault(normalise_prompt(p), i) for i, p in enumerate(prompts)], dtype=np.int64)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src, dst = np.concatenate([np.arange(n), a]), np.concatenate([np.arange(n), b])
    _, comp = connected_components(coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)), directed=False)
    _, first_idx, inverse = np.unique(comp, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first_idx))[inverse].astype(np.int64)


def near_duplicate_links(keys: np.ndarray, knn: KnnGraph | None, *, threshold: float) -> tuple[np.ndarray, np.ndarray,
                                                                                                  np.ndarray]:
    """(a, b, cosine) of every near-duplicate link, a < b, each once: kNN pairs at or above `threshold` plus each
    exact-key member linked to its key's first prompt (cosine NaN when no kNN pair measured it)."""
    pairs: dict[tuple[int, int], float] = {}
    if knn is not None and knn.k:
        rows, cols = np.nonzero(knn.similarities >= threshold - 1e-6)  # float32 rounding of identical vectors
        for i, j, s in zip(rows, knn.indices[rows, cols], knn.similarities[rows, cols]):
            pairs[(min(i, j), max(i, j))] = float(s)
    for i in np.flatnonzero(keys != np.arange(len(keys))):
        pairs.setdefault((int(keys[i]), int(i)), float("nan"))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    a, b = (np.array(x, dtype=np.int64) for x in zip(*pairs))
    return a, b, np.array(list(pairs.values()), dtype=float)


def near_duplicate_prompt_groups(prompts: Sequence[str], knn: KnnGraph | None, *,
                                 threshold: float = 0.95) -> np.ndarray:
    """(T,) int group ids over prompts: equal keys or kNN cosine >= threshold, connected components.

    knn: the prompts' neighbour graph (studio.checks.knn_graph of their unit embeddings); None = exact keys only.
    """
    keys = exact_keys(prompts)
    a, b, _ = near_duplicate_links(keys, knn, threshold=threshold)
    return _components(len(prompts), a, b)


def _groups(ctx: GenerationContext) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(keys, groups, links) for the context's prompts, computed once and shared by the checks of this module."""
    cached = ctx.cache
    if "groups" not in cached:
        prompts = ctx.tasks["prompt"].tolist()
        keys = exact_keys(prompts)
        links = near_duplicate_links(keys, ctx.prompt_knn, threshold=ctx.config.near_duplicate_threshold)
        cached["groups"] = (keys, _components(len(prompts), links[0], links[1]), links)
    return cached["groups"]


@register_generation_check
class ExactDuplicatePrompts(GenerationCheck):
    name = "exact_duplicate_prompt"
    description = "The same prompt as another task after normalising case, whitespace and punctuation."
    needs_embeddings = False

    def run(self, ctx: GenerationContext) -> CheckResult:
        keys = exact_keys(ctx.tasks["prompt"].tolist())
        ids = ctx.tasks["task_id"].to_numpy()
        members = pd.Series(np.arange(len(keys))).groupby(keys).apply(list)
        rows = []
        for group in members:
            if len(group) < 2:
                continue
            for i in group:
                others = [ids[j] for j in group if j != i]
                rows.append({"task_id": ids[i], "check": self.name, "score": 1.0, "field": "prompt",
                             "detail": f"same prompt as {len(others)} other task(s) after normalising case, "
                                       f"whitespace and punctuation", "related": others})
        return CheckResult(issue_frame(rows), {"normalisation": "lower case; runs of non-alphanumerics -> one space"})


@register_generation_check
class NearDuplicatePrompts(GenerationCheck):
    name = "near_duplicate_prompt"
    description = ("Prompts whose embeddings are nearly identical (cosine >= threshold), reported as groups; "
                   "exact-only groups are left to exact_duplicate_prompt.")

    def run(self, ctx: GenerationContext) -> CheckResult:
        thr = ctx.config.near_duplicate_threshold
        keys, groups, (a, b, sims) = _groups(ctx)
        ids = ctx.tasks["task_id"].to_numpy()
        prompts = ctx.tasks["prompt"].to_numpy()
        # The closest member with another key: what makes a task a *near* (not only an exact) duplicate.
        best = np.full(len(keys), -np.inf)
        partner = np.full(len(keys), -1, dtype=np.int64)
        for i, j, s in zip(a, b, sims):
            if keys[i] == keys[j] or np.isnan(s):
                continue
            for x, y in ((i, j), (j, i)):
                if s > best[x]:
                    best[x], partner[x] = s, y
        has_near = pd.Series(partner >= 0).groupby(groups).transform("any").to_numpy()
        members = pd.Series(np.arange(len(keys))).groupby(groups).apply(list).to_dict()
        rows = []
        for i in np.flatnonzero(has_near):
            group = members[groups[i]]
            closest = partner[i] if partner[i] >= 0 else next(j for j in group if j != i)
            cos = f"cosine {best[i]:.3f}" if partner[i] >= 0 else "same normalised prompt"
            rows.append({"task_id": ids[i], "check": self.name, "field": "prompt",
                         # 0.5 at the threshold, 1 for an identical embedding.
                         "score": 0.5 + 0.5 * (best[i] - thr) / max(1 - thr, 1e-6) if partner[i] >= 0 else 1.0,
                         "detail": f"near-duplicate group {groups[i]} of {len(group)} prompts; closest: task "
                                   f"{ids[closest]} '{short(prompts[closest], 60)}' ({cos})",
                         "related": [ids[j] for j in group if j != i]})
        n_groups = len({groups[i] for i in np.flatnonzero(has_near)})
        return CheckResult(issue_frame(rows), {"threshold": thr, "k": ctx.config.knn_k, "groups": n_groups})


@register_generation_check
class ConflictingResponses(GenerationCheck):
    name = "conflicting_responses"
    description = ("Near-duplicate prompts (exact or by embedding) whose responses are far apart: the same "
                   "question answered two different ways.")

    def run(self, ctx: GenerationContext) -> CheckResult:
        thr = ctx.config.conflict_similarity
        _, groups, (a, b, psims) = _groups(ctx)
        info = {"response_similarity_below": thr, "near_duplicate_threshold": ctx.config.near_duplicate_threshold}
        if len(a) == 0:
            return CheckResult(issue_frame([]), {**info, "pairs_compared": 0})
        r = ctx.task_response_embeddings
        rsims = np.einsum("ij,ij->i", r[a], r[b])
        info.update(pairs_compared=int(len(a)), median_pair_response_similarity=float(np.median(rsims)))
        bad = rsims < thr
        ids = ctx.tasks["task_id"].to_numpy()
        prompts = ctx.tasks["prompt"].to_numpy()
        worst: dict[int, tuple[float, int, float]] = {}
        partners: dict[int, list[int]] = {}
        for i, j, ps, rs in zip(a[bad], b[bad], psims[bad], rsims[bad]):
            for x, y in ((i, j), (j, i)):
                partners.setdefault(int(x), []).append(int(y))
                if x not in worst or rs < worst[x][0]:
                    worst[int(x)] = (float(rs), int(y), float(ps))
        rows = []
        for i, (rs, j, ps) in sorted(worst.items()):
            pcos = "same normalised prompt" if np.isnan(ps) else f"prompt cosine {ps:.2f}"
            rows.append({"task_id": ids[i], "check": self.name, "field": "response",
                         "score": float(severity((thr - rs) / 0.1)),  # 0.5 at the threshold
                         "detail": f"near-duplicate of task {ids[j]} '{short(prompts[j], 60)}' ({pcos}) but the "
                                   f"responses differ (cosine {rs:.2f} < {thr:.2f})",
                         "related": [ids[y] for y in partners[i]]})
        return CheckResult(issue_frame(rows), info)
