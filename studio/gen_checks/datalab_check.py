"""cleanlab's Datalab on the prompt embeddings: its label-free issue types, in the studio's issue-row format.

Generation tasks have no class label, so Datalab runs as `Datalab(data={"prompt": ...}, task="classification")`
without `label_name`, and `find_issues(features=..., knn_graph=..., issue_types=...)` gets the prompts' own
neighbour graph (cosine distances, the same exact blocked search the other checks use), so cleanlab does not run
a second search. Issue types: near_duplicate (pairs much closer than the median nearest-neighbour distance),
outlier (kNN-distance outlier score below its fence), non_iid (a permutation test of whether neighbours in
embedding space sit near each other in data order: one data-set-level verdict, p-value in the summary).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.gen_checks.base import (CheckResult, GenerationCheck, GenerationContext, issue_frame,
                                    register_generation_check)


def _csr_graph(indices: np.ndarray, similarities: np.ndarray):
    """The kNN graph as cleanlab wants it: (T, T) CSR of cosine distances, ascending along each row, explicit
    zeros kept for identical prompts."""
    from scipy.sparse import csr_matrix

    t, k = indices.shape
    dist = np.clip(1.0 - similarities.astype(np.float64), 0.0, 2.0)
    return csr_matrix((dist.ravel(), indices.ravel(), np.arange(0, t * k + 1, k)), shape=(t, t))


@register_generation_check
class DatalabPrompts(GenerationCheck):
    name = "datalab"
    description = ("cleanlab Datalab on the prompt embeddings: near-duplicates, outliers and whether the data "
                   "order is i.i.d. (label-free issue types).")
    produces = ("datalab_near_duplicate", "datalab_outlier", "datalab_non_iid")

    def run(self, ctx: GenerationContext) -> CheckResult:
        types = list(ctx.config.datalab_issue_types)
        info: dict = {"issue_types": types}
        if ctx.n_tasks < ctx.config.min_rows or not types:
            return CheckResult(issue_frame([]), {**info, "skipped": f"{ctx.n_tasks} prompts < min_rows "
                                                                    f"{ctx.config.min_rows}" if types else "no types"})
        import warnings

        from cleanlab import Datalab

        graph = ctx.prompt_knn
        lab = Datalab(data={"prompt": ctx.tasks["prompt"].tolist()}, task="classification", verbosity=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab.find_issues(features=ctx.prompt_embeddings, knn_graph=_csr_graph(graph.indices, graph.similarities),
                            issue_types={t: {"k": graph.k} for t in types})
        summary = lab.get_issue_summary()
        info["summary"] = summary.to_dict("records")
        ids = ctx.tasks["task_id"].to_numpy()
        prompts = ctx.tasks["prompt"].to_numpy()
        rows: list[dict] = []
        if "near_duplicate" in types:
            found = lab.get_issues("near_duplicate")
            sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
            info["near_duplicate"] = {"threshold": lab.get_info("near_duplicate")["threshold"]}
            for i in np.flatnonzero(found["is_near_duplicate_issue"].to_numpy()):
                members = [int(j) for j in sets[i]]
                rows.append({"task_id": ids[i], "check": "datalab_near_duplicate", "field": "prompt",
                             "score": 1.0 - float(found["near_duplicate_score"].iat[i]),
                             "detail": f"cleanlab near-duplicate of {len(members)} prompt(s), e.g. task "
                                       f"{ids[members[0]]} '{prompts[members[0]][:60]}'" if members else
                                       "cleanlab near-duplicate",
                             "related": [ids[j] for j in members]})
        if "outlier" in types:
            found = lab.get_issues("outlier")
            for i in np.flatnonzero(found["is_outlier_issue"].to_numpy()):
                score = float(found["outlier_score"].iat[i])
                rows.append({"task_id": ids[i], "check": "datalab_outlier", "field": "prompt", "score": 1.0 - score,
                             "detail": f"cleanlab outlier: prompt unlike the others (outlier score {score:.3f}; "
                                       "lower = more unusual)"})
        if "non_iid" in types:
            p_value = float(lab.get_info("non_iid")["p-value"])
            info["non_iid_p_value"] = p_value
            found = lab.get_issues("non_iid")
            for i in np.flatnonzero(found["is_non_iid_issue"].to_numpy()):
                rows.append({"task_id": ids[i], "check": "datalab_non_iid", "field": "task", "score": 1.0 - p_value,
                             "detail": f"the task order is not i.i.d. (cleanlab permutation test p = {p_value:.3g}): "
                                       "similar prompts sit together in data order; shuffle before any order-based "
                                       "split. This task is where the effect is strongest."})
        ctx.cache["datalab_summary"] = summary
        return CheckResult(issue_frame(rows), info)


def datalab_summary(ctx: GenerationContext) -> pd.DataFrame:
    """Datalab's own summary (issue_type, score, num_issues; lower score = more severe) after the check ran,
    else an empty frame."""
    return ctx.cache.get("datalab_summary", pd.DataFrame(columns=["issue_type", "score", "num_issues"]))
