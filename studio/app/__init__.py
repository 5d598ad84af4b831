"""The Streamlit app: main.py routes, views/ show, state.py holds the cached handles. No logic lives here."""
