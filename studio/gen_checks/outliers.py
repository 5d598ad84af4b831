"""Outliers relative to the data set itself: prompt and response lengths, and responses unrelated to their prompt.

Both use a robust z-score, (x - median) / (1.4826 * MAD) (the MAD scaled to a normal standard deviation; see
`robust_z` for the fall-backs when the MAD is 0), flagged beyond 3.5 by default: Iglewicz & Hoaglin's rule for
the modified z-score. Lengths are compared on the log scale (word counts are skewed; a response ten times the
median is as odd as one a tenth of it), and must also be `length_ratio` times off the median. Relatedness is
measured against a background of other responses (`relatedness`), in two views (sentence embeddings and
character n-grams), and a response is unrelated when it is an outlier of the data set's relatedness or, in both
views, hardly closer to its prompt than a random response (the floor; it matters in small data sets).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio.gen_checks.base import (CheckResult, GenerationCheck, GenerationContext, issue_frame,
                                    register_generation_check, severity, short)
from studio.gen_checks.duplicates import exact_keys
from studio.gen_checks.text import word_count


def robust_z(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(z, center, scale) of 1-D values: z = (x - median) / scale, scale = 1.4826 MAD, or IQR / 1.349 when the
    MAD is 0, or 1.2533 x the mean absolute deviation from the median when that is 0 too (most values equal, a
    few not: the few are the outliers); z = 0 everywhere when all values are equal. NaN values are left out of
    the statistics and get a NaN z."""
    x = np.asarray(values, dtype=float)
    known = x[np.isfinite(x)]
    if len(known) == 0:
        return np.full(len(x), np.nan), float("nan"), float("nan")
    center = float(np.median(known))
    scale = 1.4826 * float(np.median(np.abs(known - center)))
    if scale <= 1e-12:
        q1, q3 = np.percentile(known, [25, 75])
        scale = float(q3 - q1) / 1.349
    if scale <= 1e-12:
        scale = 1.2533 * float(np.mean(np.abs(known - center)))
    if scale <= 1e-12:
        return np.where(np.isfinite(x), 0.0, np.nan), center, 0.0
    return (x - center) / scale, center, scale


@register_generation_check
class LengthOutliers(GenerationCheck):
    name = "length_outlier"
    description = ("Prompts or responses much shorter or longer than the rest (robust z-score of log word count, "
                   "and at least `length_ratio` times off the median).")
    needs_embeddings = False

    def run(self, ctx: GenerationContext) -> CheckResult:
        thr = ctx.config.length_z
        rows: list[dict] = []
        info: dict = {"robust_z": thr, "ratio": ctx.config.length_ratio, "scale": "log(1 + words)"}
        sources = (("prompt", ctx.tasks, ""), ("response", ctx.responses, None))
        for field, frame, annotator in sources:
            words = np.array([word_count(t) for t in frame[field]], dtype=float)
            if len(words) < ctx.config.min_rows:
                info[field] = f"skipped: {len(words)} values < min_rows {ctx.config.min_rows}"
                continue
            x = np.log1p(words)
            z, center, scale = robust_z(x)
            margin = max(thr * scale, np.log(ctx.config.length_ratio))
            lo, hi = (float(np.expm1(center + s * margin)) for s in (-1, 1))
            info[field] = {"median_words": float(np.expm1(center)), "flag_below_words": lo, "flag_above_words": hi}
            far = np.abs(x - center) >= np.log(ctx.config.length_ratio)
            for i in np.flatnonzero((np.abs(z) > thr) & far):
                direction = "too short" if z[i] < 0 else "too long"
                rows.append({"task_id": frame["task_id"].iat[i], "check": self.name, "field": field,
                             "annotator": annotator if annotator is not None else frame["annotator"].iat[i],
                             "score": float(severity(abs(z[i]) - thr)),
                             "detail": f"{field} {direction}: {int(words[i])} words (median {np.expm1(center):.0f}; "
                                       f"flagged at <= {int(np.floor(lo))} or >= {int(np.ceil(hi))} words; "
                                       f"robust z {z[i]:+.1f})"})
        return CheckResult(issue_frame(rows), info)


def relatedness(prompt_vectors: Any, response_vectors: Any, groups: np.ndarray, *, background: int = 2000,
                seed: int = 0, chunk_size: int = 2048, min_background: int = 10) -> np.ndarray:
    """(N,) how much closer each response is to its own prompt than other prompts' responses are, in standard
    deviations: (cos(p_i, r_i) - mean_j cos(p_i, r_j)) / std_j, over a seeded sample of `background` responses j
    of other groups. Linear in N; a prompt whose every cosine is low (typos, one word) is judged on its own scale.

    prompt_vectors: (N, D) the prompt of each response row; response_vectors: (N, D); unit rows, dense arrays or
    scipy sparse matrices (e.g. TF-IDF, which is L2-normalised by default). groups: (N,) ints; responses of the
    row's own group (its task, or every task with the same prompt) are never its background. NaN where fewer
    than `min_background` background responses remain.
    """
    from scipy import sparse

    n = response_vectors.shape[0]
    rng = np.random.default_rng(seed)
    bg = np.sort(rng.choice(n, size=min(background, n), replace=False))
    is_sparse = sparse.issparse(prompt_vectors)
    if is_sparse:
        own = np.asarray(prompt_vectors.multiply(response_vectors).sum(axis=1)).ravel()
    else:
        own = np.einsum("ij,ij->i", prompt_vectors, response_vectors)
    bg_vectors = response_vectors[bg].T
    out = np.zeros(n)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        sims = prompt_vectors[start:stop] @ bg_vectors
        sims = sims.toarray() if is_sparse else np.asarray(sims)
        other = groups[bg][None, :] != groups[start:stop, None]  # not answers to the same prompt
        count = other.sum(axis=1)
        mean = np.where(other, sims, 0).sum(axis=1) / np.maximum(count, 1)
        var = np.where(other, (sims - mean[:, None]) ** 2, 0).sum(axis=1) / np.maximum(count - 1, 1)
        value = (own[start:stop] - mean) / np.maximum(np.sqrt(var), 1e-6)
        out[start:stop] = np.where(count >= min_background, value, np.nan)
    return out


def lexical_vectors(prompts: list[str], responses: list[str]) -> tuple[Any, Any]:
    """Character 3-4-gram TF-IDF (within word boundaries, sublinear tf, L2-normalised rows) of prompts and
    responses, fitted on both: a view of relatedness that survives typos ("cancfel order", "prfile"), which
    a subword encoder reads as unknown words."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), sublinear_tf=True, min_df=2, dtype=np.float32)
    try:
        vec.fit(list(dict.fromkeys(prompts + responses)))
    except ValueError:  # no n-gram occurs twice (a tiny or empty vocabulary): fit without the frequency floor
        vec.set_params(min_df=1).fit(list(dict.fromkeys(prompts + responses)) + ["   "])
    return vec.transform(prompts), vec.transform(responses)


@register_generation_check
class UnrelatedResponses(GenerationCheck):
    name = "unrelated_response"
    description = ("Responses that fit their prompt much less than responses usually fit theirs here (an outlier "
                   "of prompt-response relatedness, judged against the data set's own distribution).")

    def run(self, ctx: GenerationContext) -> CheckResult:
        cfg = ctx.config
        n = len(ctx.responses)
        info: dict = {"robust_z": cfg.unrelated_z, "floor": cfg.unrelated_floor,
                      "never_above": cfg.unrelated_max_relatedness, "background": cfg.unrelated_background,
                      "lexical_view": cfg.unrelated_lexical}
        if n < cfg.min_rows or ctx.n_tasks < 3:
            return CheckResult(issue_frame([]), {**info, "skipped": f"{n} responses to {ctx.n_tasks} tasks; it needs "
                                                                    f"min_rows = {cfg.min_rows} responses and 3 tasks"})
        p = ctx.prompt_embeddings[ctx.task_row]
        r = ctx.response_embeddings
        groups = exact_keys(ctx.tasks["prompt"].tolist())[ctx.task_row]
        rel = relatedness(p, r, groups, background=cfg.unrelated_background, seed=cfg.seed)
        z, center, _ = robust_z(rel)
        info["median_relatedness"] = center
        lex, lex_center = np.full(n, np.nan), float("nan")
        combined = rel
        if cfg.unrelated_lexical:
            # Two views, one verdict: each view's robust z, averaged, standardised again. The floor asks both
            # views (in background standard deviations, 0 = a random response): a paraphrase with no shared
            # characters, or a typo the encoder cannot read, is not random in the other view.
            lp, lr = lexical_vectors(ctx.responses["prompt"].tolist(), ctx.responses["response"].tolist())
            lex = relatedness(lp, lr, groups, background=cfg.unrelated_background, seed=cfg.seed)
            z_lex, lex_center, _ = robust_z(lex)
            info["median_lexical_relatedness"] = lex_center
            z, _, _ = robust_z((z + z_lex) / 2)
            combined = np.maximum(rel, lex)
        outlier = z < -cfg.unrelated_z
        random_like = combined < cfg.unrelated_floor
        # An empty response is the validation report's (empty_response), not an unrelated one.
        answered = ctx.responses["response"].str.strip().str.len().to_numpy() > 0
        flagged = (outlier | random_like) & (combined < cfg.unrelated_max_relatedness) & answered
        info["flagged_as_outlier"], info["flagged_below_floor"] = int((flagged & outlier).sum()), int(
            (flagged & random_like).sum())
        cos = np.einsum("ij,ij->i", p, r)
        frame = ctx.responses
        rows = []
        for i in np.flatnonzero(flagged):
            lexical = "" if np.isnan(lex[i]) else f", in characters {lex[i]:.1f} (median {lex_center:.1f})"
            why = f"robust z {z[i]:.1f}" if outlier[i] else f"below the floor {cfg.unrelated_floor:g}"
            # 0.5 at whichever threshold was crossed, rising with the distance past it.
            excess = max(-z[i] - cfg.unrelated_z, (cfg.unrelated_floor - combined[i]) * 2)
            rows.append({"task_id": frame["task_id"].iat[i], "annotator": frame["annotator"].iat[i],
                         "check": self.name, "field": "pair", "score": float(severity(excess)),
                         "detail": f"response fits its prompt about as well as a random response does ({why}): "
                                   f"in meaning {rel[i]:.1f} SD above random responses (median {center:.1f})"
                                   f"{lexical}; cosine {cos[i]:.2f}; '{short(frame['response'].iat[i], 60)}'"})
        return CheckResult(issue_frame(rows), info)
