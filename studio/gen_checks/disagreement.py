"""Expert disagreement: where several experts answered one prompt, how far apart their responses are.

Two measures per task with two or more responses: embedding disagreement = 1 - the mean pairwise cosine
similarity of the responses (the decision), and lexical disagreement = 1 - the mean pairwise Jaccard overlap of
their lower-cased word sets (cheap, shown beside it: a paraphrase disagrees lexically, not in meaning).
"""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pandas as pd

from studio.gen_checks.base import (CheckResult, GenerationCheck, GenerationContext, issue_frame,
                                    register_generation_check, severity)

_TOKEN = re.compile(r"\w+")

DISAGREEMENT_COLUMNS = ["task_id", "n_responses", "annotators", "mean_similarity", "embedding_disagreement",
                        "lexical_disagreement", "furthest_annotator"]


def jaccard(a: str, b: str) -> float:
    """|A & B| / |A | B| of the lower-cased word sets; 1.0 for two texts without words."""
    x, y = set(_TOKEN.findall(a.lower())), set(_TOKEN.findall(b.lower()))
    return len(x & y) / len(x | y) if x | y else 1.0


def expert_disagreement(responses: pd.DataFrame, response_vectors: np.ndarray) -> pd.DataFrame:
    """One row per task answered by two or more responses (DISAGREEMENT_COLUMNS).

    responses: task_id, response, annotator (N rows); response_vectors: (N, D) unit rows aligned with it.
    furthest_annotator: with three or more responses, the one least similar on average to the others, else "".
    """
    rows = []
    for task_id, idx in responses.groupby("task_id", sort=False).indices.items():
        if len(idx) < 2:
            continue
        v = response_vectors[idx]
        sims = v @ v.T
        pairs = list(combinations(range(len(idx)), 2))
        mean_sim = float(np.mean([sims[i, j] for i, j in pairs]))
        texts = responses["response"].to_numpy()[idx]
        lexical = float(np.mean([jaccard(texts[i], texts[j]) for i, j in pairs]))
        names = responses["annotator"].to_numpy()[idx]
        furthest = ""
        if len(idx) >= 3:
            to_others = (sims.sum(axis=1) - np.diag(sims)) / (len(idx) - 1)
            furthest = str(names[int(np.argmin(to_others))])
        rows.append({"task_id": task_id, "n_responses": len(idx), "annotators": tuple(str(n) for n in names),
                     "mean_similarity": mean_sim, "embedding_disagreement": 1.0 - mean_sim,
                     "lexical_disagreement": 1.0 - lexical, "furthest_annotator": furthest})
    return pd.DataFrame(rows, columns=DISAGREEMENT_COLUMNS)


@register_generation_check
class ExpertDisagreement(GenerationCheck):
    name = "expert_disagreement"
    description = ("Experts who answered the same prompt gave responses far apart in meaning (mean pairwise "
                   "cosine below the threshold); lexical overlap is shown beside it.")

    def run(self, ctx: GenerationContext) -> CheckResult:
        thr = ctx.config.disagreement_similarity
        multi = ctx.responses.groupby("task_id", sort=False)["response"].transform("size") > 1
        info: dict = {"mean_similarity_below": thr, "tasks_with_several_responses": 0}
        if not multi.any():
            return CheckResult(issue_frame([]), info)
        sub = ctx.responses[multi.to_numpy()]
        table = expert_disagreement(sub, ctx.response_embeddings[multi.to_numpy()])
        info.update(tasks_with_several_responses=len(table),
                    median_mean_similarity=float(table["mean_similarity"].median()))
        rows = []
        for t in table[table["mean_similarity"] < thr].itertuples(index=False):
            who = f"; furthest: {t.furthest_annotator}" if t.furthest_annotator else ""
            rows.append({"task_id": t.task_id, "check": self.name, "field": "response",
                         "score": float(severity((thr - t.mean_similarity) / 0.1)),  # 0.5 at the threshold
                         "detail": f"{t.n_responses} experts disagree: mean response cosine {t.mean_similarity:.2f} "
                                   f"< {thr:.2f} (lexical disagreement {t.lexical_disagreement:.2f}){who}"})
        return CheckResult(issue_frame(rows), info)
