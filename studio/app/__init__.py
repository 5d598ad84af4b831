"""The Streamlit app: main.py routes, pages/ show, state.py holds the cached handles. No logic lives here."""
