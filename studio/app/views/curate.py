"""Curate: split by task (near-duplicates kept together), rebalance the train split, export a data version."""

from __future__ import annotations

import altair as alt
import streamlit as st

from studio.app.charts import LABEL_LIMIT, options_help
from studio.app.state import (author_field, download_folder, guarded, progress_callback, safe, snapshot_or_stop,
                              workspace)
from studio.balance import REBALANCERS
from studio.curate import CurateConfig
from studio.review import decision_history
from studio.split_ledger import moved_count, split_summary



def exported(done) -> None:
    """Say where the exported data version is."""
    if done is not None and done.export is not None:
        info = done.export
        test = info.manifest.get("test_set", {})
        st.success(f"Data version `{info.version_id}` "
                   + ("written" if info.created else "already existed (same content)")
                   + f" at {info.path} (HF DatasetDict, parquet, JSONL, dataset card)"
                   + (f"; test set `{test['hash']}` ({test['tasks']} tasks)." if test.get("hash") else "."))


def newest_export(ws):
    """The folder of the newest exported data version, or None."""
    manifests = sorted(ws.folder("exports").glob("ds-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return manifests[-1].parent if manifests else None


def last_test_hash(ws) -> str:
    """The test-set hash of the newest exported data version, "" when there is none."""
    import json

    folder = newest_export(ws)
    if folder is None:
        return ""
    return str(json.loads((folder / "manifest.json").read_text()).get("test_set", {}).get("hash", ""))


st.title("Curate")
ws = workspace()
project, snapshot = snapshot_or_stop(ws)
author = author_field()
cfg = ws.cfg.curate

outdated = guarded(lambda: ws.review.outdated_decisions(snapshot))
if outdated is not None and len(outdated):
    st.warning(f"{len(outdated)} review decision(s) were taken on a label the annotators have changed since. They "
               "still apply: confirm them again, or undo them so that the annotators' new label counts.")
    with st.expander(f"Decisions on changed labels ({len(outdated)})", expanded=True):
        st.dataframe(outdated[["task_id", "action", "label", "label_then", "label_now", "author", "created_at"]],
                     hide_index=True, width="stretch")
        left, right = st.columns(2)
        confirm = left.button("Confirm them again", key="outdated_confirm")
        undo = right.button("Undo them: the annotators' label counts", key="outdated_undo")
        if confirm or undo:
            n = guarded(lambda: ws.review.resolve_outdated(snapshot, author=author, confirm=confirm))
            if n is not None:
                st.success(f"{'Confirmed' if confirm else 'Undid'} {n} decision(s) (appended to the log).")

with st.expander("Review decisions applied"):
    history = decision_history(ws.decisions(project.id).read())
    if history.empty:
        st.write("No review decisions yet: the curated labels are the annotators' (Quality page to review).")
    else:
        in_force = history[history["state"] == "in force"]
        st.write(f"{len(in_force)} decision(s) in force: " + ", ".join(
            f"{n} {a}" for a, n in in_force["action"].value_counts().items()) + ".")
        everything = st.toggle("Whole log (superseded, undone, undos)", key="history_all")
        shown = history if everything else in_force
        st.dataframe(shown[["created_at", "task_id", "action", "label", "author", "source", "state", "note"]],
                     hide_index=True, width="stretch")

saved_settings = ws.curation.saved_curate_settings()
if saved_settings is None:
    st.caption("Settings: studio.toml's [curate] (or the defaults). Saving here keeps them for the Train button, "
               "`studio train` and `studio curate`.")
else:
    c1, c2 = st.columns([4, 1])
    c1.caption(f"Settings saved from this page at {saved_settings[1]} ({ws.curation.curate_settings_file}); "
               "the Train button, `studio train` and `studio curate` use them instead of studio.toml's [curate].")
    if c2.button("Back to studio.toml", key="curate_forget"):
        ws.curation.forget_curate_settings()
        st.session_state.pop("curate_preview", None)
        st.rerun()

# Plain widgets, not a form: the test share under the sliders follows them as they move. Nothing is computed
# until the button, so moving a slider costs one cheap rerun.
with st.container(border=True):
    st.caption(f"Snapshot `{snapshot.id}` · review decisions are applied · validation and test are never resampled")
    c1, c2, c3 = st.columns(3)
    train = c1.slider("Train share", 0.5, 0.95, float(cfg.ratios[0]), 0.05)
    val = c2.slider("Validation share", 0.0, 0.3, float(cfg.ratios[1]), 0.05,
                    help="The test share is what is left: 1 - train - validation.")
    c1.caption(f"Test share: {max(0.0, 1.0 - train - val):.2f} (what is left)")
    seed = c3.number_input("Seed", min_value=0, value=int(cfg.seed))
    names = list(REBALANCERS)
    has_classes = snapshot.schema.kind.has_classes
    if has_classes:
        sampler = st.selectbox("Rebalancing (train split only)", names, index=names.index(cfg.sampler),
                               help=options_help({k: r.description for k, r in REBALANCERS.items()}))
        st.caption(REBALANCERS[sampler].description)
    else:  # answers have no classes to rebalance on; near-duplicate prompts still stay in one split
        sampler = "none"
        st.caption("No rebalancing: instruction -> response data has no classes. Near-duplicate prompts are kept "
                   "in one split, so no test prompt has a paraphrase in train.")
    threshold = st.slider("Near-duplicate similarity (kept in one split)", 0.80, 1.0,
                          float(cfg.near_duplicate_threshold), 0.01)
    saved = st.button("Save settings and preview", type="primary", key="curate_save")

if saved:
    test = round(1.0 - train - val, 4)
    new = guarded(lambda: CurateConfig(ratios=[train, val, test], seed=int(seed), sampler=sampler,
                                       near_duplicate_threshold=threshold, group_field=cfg.group_field))
    if new is not None:
        ws.curation.save_curate_settings(new)
        st.session_state["curate_preview"] = True
        st.rerun()

if not st.session_state.get("curate_preview") and saved_settings is None:
    st.info("Press **Save settings and preview** to see the class counts per split with these settings.")
else:
    bar = st.progress(0.0, text="Embedding texts for near-duplicate groups ...")
    prepared = guarded(lambda: ws.curation.prepare(snapshot, export=False,
                                                   progress=progress_callback(bar, "Embedding")))
    bar.empty()
    if prepared is not None:
        st.caption(split_summary(prepared.split, prepared.split_moves)
                   + (f" Test set of the last export: `{test_hash}`." if (test_hash := last_test_hash(ws)) else ""))
        if prepared.split_note:
            st.info(safe(prepared.split_note))
    if prepared is not None and not snapshot.schema.kind.has_classes:
        split_df = prepared.split.df
        st.subheader("Prompts per split" + (" and group" if (split_df.get("group", "") != "").any() else ""))
        per = split_df.assign(group=split_df["group"].replace("", "(none)") if "group" in split_df else "(none)")
        st.altair_chart(alt.Chart(per).mark_bar().encode(
            x=alt.X("count():Q", title="prompts"),
            y=alt.Y("group:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
            color=alt.Color("split:N", sort=["train", "validation", "test"], legend=alt.Legend(orient="bottom"))),
            width="stretch")
        st.caption(" · ".join(f"{s}: {n}" for s, n in split_df["split"].value_counts().reindex(
            ["train", "validation", "test"], fill_value=0).items()))
    elif prepared is not None:
        for warning in prepared.split.warnings:
            st.warning(safe(warning))
        left, right = st.columns(2)
        with left:
            st.subheader("Class counts per split")
            counts = prepared.split.counts.reset_index().rename(columns={"index": "class"})
            counts = counts.rename(columns={counts.columns[0]: "class"})
            long = counts.melt(id_vars="class", value_vars=["train", "validation", "test"], var_name="split",
                               value_name="tasks")
            st.altair_chart(alt.Chart(long).mark_bar().encode(
                x="tasks:Q", y=alt.Y("class:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
                color=alt.Color("split:N", sort=["train", "validation", "test"], legend=alt.Legend(orient="bottom")),
                order=alt.Order("split_order:Q")).transform_calculate(
                split_order="indexof(['train', 'validation', 'test'], datum.split)"), width="stretch")
        with right:
            bal = prepared.balance.counts.reset_index().rename(columns={"index": "class"})
            bal = bal.rename(columns={bal.columns[0]: "class"})
            unchanged = bal["before"].equals(bal["after"])
            st.subheader("Train split (not resampled)" if unchanged
                         else f"Train split before / after {prepared.balance.method}")
            long = bal.melt(id_vars="class", value_vars=["before"] if unchanged else ["before", "after"],
                            var_name="when", value_name="tasks")
            # Rebalancing repeats or drops train tasks, so "tasks" here counts a repeated task each time.
            st.altair_chart(alt.Chart(long).mark_bar().encode(
                x="tasks:Q", y=alt.Y("class:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
                color=alt.Color("when:N", legend=None if unchanged else alt.Legend(orient="bottom")),
                yOffset="when:N"), width="stretch")
            if prepared.balance.class_weights:
                st.caption("Class weights for the loss: " + ", ".join(
                    f"{w:.2f}" for w in prepared.balance.class_weights))
    if prepared is not None and st.button("Export this data version"):
        exported(guarded(lambda: ws.curation.prepare(snapshot, export=True)))
    if (latest := newest_export(ws)) is not None:
        download_folder(f"Download data version {latest.name} (zip: DatasetDict, parquet, JSONL, card)", latest,
                        key="download_version")
    if prepared is not None and ws.curation.split_ledger() is not None:
        with st.expander("Re-split every task"):
            st.write("Tasks keep the split their first data version gave them, so test scores stay comparable and no "
                     "test task ever trains a model. A re-split assigns every task afresh with the settings above: "
                     "runs before and after it are measured on different test sets.")
            if st.button("Show what would move", key="resplit_preview"):
                st.session_state["resplit_shown"] = True
            if st.session_state.get("resplit_shown"):
                preview = guarded(lambda: ws.curation.prepare(snapshot, export=False, resplit=True))
                if preview is not None:
                    st.write(f"{moved_count(preview.split_moves)} task(s) would change split "
                             "(rows: split now, columns: split after):")
                    st.dataframe(preview.split_moves, width="content")
                    sure = st.checkbox("I understand that test scores before and after are not comparable",
                                       key="resplit_sure")
                    if st.button("Re-split and export", disabled=not sure, key="resplit_go"):
                        st.session_state.pop("resplit_shown", None)
                        exported(guarded(lambda: ws.curation.prepare(snapshot, export=True, resplit=True)))
