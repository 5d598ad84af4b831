"""The Runs page's view of an instruction -> response run: the fine-tuned model against its base model on the
same held-out prompts (ROUGE-L, chrF, embedding similarity, perplexity of the references, answer length), per
group, the answers side by side; what people said in a pairwise comparison in Label Studio ("Compare in Label
Studio"); and how much experts changed the drafts this run pushed.

Rendering only: figures come from the run's metrics.json (training.metrics.GenerationMetrics) and
examples.parquet, comparisons from ws.evaluation, draft edits from ws.active.draft_edits.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.state import guarded, md
from training.metrics import GenerationScores, RunMetrics

#: (header, GenerationScores field, higher is better) of the base-vs-fine-tuned table.
FIGURES = (("ROUGE-L", "rouge_l", True), ("chrF", "chrf", True),
           ("embedding similarity", "embedding_similarity", True), ("perplexity of references", "perplexity", False),
           ("answer words", "response_words", None), ("cut at max tokens", "truncated", False),
           ("generated tokens/s", "generation_tokens_per_s", True))


def score_table(base: GenerationScores, tuned: GenerationScores) -> pd.DataFrame:
    rows = []
    for header, key, _ in FIGURES:
        b, t = getattr(base, key), getattr(tuned, key)
        rows.append({"figure": header, "base model": b, "fine-tuned": t,
                     "change": None if b is None or t is None else t - b})
    return pd.DataFrame(rows)


def compare_row(run_id: str, m: RunMetrics) -> dict[str, Any]:
    """One row of the Runs page's comparison table for a generation run."""
    g = m.generation
    return {"run": run_id, "ROUGE-L": g.fine_tuned.rouge_l, "base ROUGE-L": g.base.rouge_l,
            "chrF": g.fine_tuned.chrf, "embedding similarity": g.fine_tuned.embedding_similarity,
            "perplexity": g.fine_tuned.perplexity, "validation loss": g.validation_loss,
            "eval prompts": g.n_eval_prompts, "train tokens/s": g.train_tokens_per_s,
            "generated tokens/s": g.generation_tokens_per_s, "train s": m.train_time_s,
            "adapter bytes": m.adapter_size_bytes}


def render(ws, run, m: RunMetrics, runs: list) -> None:
    g = m.generation
    if not g.evaluated:
        st.info("This run evaluated no prompts ([sft] eval_prompts = 0, or no test/validation split).")
    else:
        st.subheader(f"Base model vs fine-tuned, on {g.n_eval_prompts} {g.eval_split} prompts")
        st.dataframe(score_table(g.base, g.fine_tuned), hide_index=True, width="stretch",
                     column_config={"change": st.column_config.NumberColumn(format="%+.3f")})
        if g.per_group:
            groups = pd.DataFrame([{"group": name, "prompts": s.n, "base": s.base.rouge_l,
                                    "fine-tuned": s.fine_tuned.rouge_l} for name, s in g.per_group.items()])
            st.markdown("**ROUGE-L per group**")
            long = groups.melt(id_vars=["group", "prompts"], value_vars=["base", "fine-tuned"], var_name="model",
                               value_name="ROUGE-L")
            st.altair_chart(alt.Chart(long).mark_bar().encode(
                y=alt.Y("group:N", title=None), x=alt.X("ROUGE-L:Q"), color="model:N", yOffset="model:N",
                tooltip=["group", "model", "ROUGE-L", "prompts"]), width="stretch")
        examples_file = run.path / "examples.parquet"
        if examples_file.exists():
            examples = pd.read_parquet(examples_file)
            st.markdown("**Answers side by side**")
            st.dataframe(examples, hide_index=True, width="stretch")
            st.download_button("Download the answers (CSV)", examples.to_csv(index=False).encode(),
                               file_name=f"{run.id}-answers.csv", mime="text/csv")
    comparisons(ws, run, runs)
    drafts(ws, run)


def comparisons(ws, run, runs: list) -> None:
    """Start a pairwise comparison in Label Studio, and show the results of this run's comparisons."""
    st.subheader("People judge the answers")
    st.caption("Two models' answers to the same held-out prompts go into a new Label Studio project; which side is "
               "which is drawn at random per prompt and hidden from the judges.")
    others = ["base"] + [r.id for r in runs if r.id != run.id and (r.path / "examples.parquet").exists()]
    against = st.selectbox("Compare against", others, key=f"compare_{run.id}")
    if st.button("Compare in Label Studio", key=f"compare_go_{run.id}"):
        made = guarded(lambda: ws.evaluation.compare(run.id, against))
        if made is not None:
            st.success(f"Created '{md(made.project_title)}' with {len(made.items)} prompts: ask judges to open it in "
                       f"Label Studio ({ws.url}/projects/{made.project_id}).")
    mine = [c for c in guarded(lambda: ws.evaluation.store.list()) or [] if run.id in (c.system_a, c.system_b)]
    for comparison in mine:
        with st.expander(f"{comparison.system_a} vs {comparison.system_b} · {comparison.created_at} · "
                         f"{len(comparison.items)} prompts", expanded=True):
            if st.button("Sync and show results", key=f"results_{comparison.id}"):
                st.session_state[f"results_{comparison.id}"] = guarded(
                    lambda c=comparison: ws.evaluation.results(c.id))
            results = st.session_state.get(f"results_{comparison.id}")
            if results is None:
                continue
            if results.judgments.empty:
                st.info("No judgments yet.")
                continue
            rows = [{"system": s, "wins": results.wins[s], "win rate (ties = ½)": results.win_rate[s],
                     "95% interval": f"{results.interval[s][0]:.2f} – {results.interval[s][1]:.2f}"}
                    for s in (results.system_a, results.system_b)]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            agreement = "n/a (no prompt judged twice)" if results.agreement is None else f"{results.agreement:.0%}"
            st.caption(f"{results.ties} ties · {results.tasks_judged} of {results.tasks_total} prompts judged · "
                       f"judges agree on {agreement} of the pairs of judgments of the same prompt")


def drafts(ws, run) -> None:
    """How much experts changed the drafts this run pushed (a live measure of the model)."""
    from studio.app.state import latest_snapshot

    snapshot = latest_snapshot(ws)
    if snapshot is None or snapshot.schema.kind.name != "generation":
        return
    result = guarded(lambda: ws.active.draft_edits(snapshot))
    if result is None:
        return
    edits, stats = result
    stats = stats[stats["model_version"] == run.id]
    if stats.empty:
        return
    st.subheader("Drafts corrected by experts")
    s = stats.iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("drafts answered", f"{int(s['answered'])} of {int(s['drafts'])}")
    c2.metric("accepted unchanged", "–" if pd.isna(s["unchanged_share"]) else f"{s['unchanged_share']:.0%}")
    c3.metric("mean edit distance", "–" if pd.isna(s["mean_distance"]) else f"{s['mean_distance']:.2f}",
              help="normalised Levenshtein distance between the draft and the submitted answer: 0 = unchanged, "
                   "1 = rewritten")
    mine = edits[edits["model_version"] == run.id]
    if len(mine):
        st.altair_chart(alt.Chart(mine).mark_bar().encode(
            x=alt.X("distance:Q", bin=alt.Bin(maxbins=20), title="edit distance"), y=alt.Y("count()", title="drafts")),
            width="stretch")
        st.dataframe(mine[["task_id", "distance", "draft", "response", "annotator"]], hide_index=True, width="stretch")
