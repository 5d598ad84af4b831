"""Entry point: `streamlit run studio/app/main.py`. Routes pages, sets session state once and shows the project
picker in the sidebar (the pages use the chosen project's workspace)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `streamlit run` puts this folder, not the repo, on sys.path; make `import studio` work from a checkout too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st  # noqa: E402

from studio.app.state import project_picker  # noqa: E402

PAGES = Path(__file__).parent / "views"  # not "pages/": Streamlit would also serve that as a legacy multipage app

# A file next to this one, not a Material icon or an emoji: Streamlit fetches those favicons from the internet.
st.set_page_config(page_title="Annotation studio", page_icon=str(Path(__file__).parent / "icon.png"), layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(PAGES / "quality.py", title="Quality", icon=":material/fact_check:"),
    st.Page(PAGES / "curate.py", title="Curate", icon=":material/tune:"),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/leaderboard:"),
    st.Page(PAGES / "active.py", title="Active learning", icon=":material/ads_click:"),
])
project_picker()  # every page works on the project chosen here (state.workspace())
navigation.run()
