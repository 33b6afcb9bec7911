"""Entrypoint of the Roadwork Ops dashboard: `streamlit run roadwork/dashboard/app.py`.

It only builds the navigation; each page is a thin script under `pages/` that reads through `services`.
"""

import sys
from pathlib import Path

# `streamlit run` puts this file's folder on sys.path, not the repository root; without an installed package
# the absolute `roadwork.` imports of the pages need the root.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

import streamlit as st  # noqa: E402

PAGES = Path(__file__).with_name("pages")

st.set_page_config(page_title="Roadwork Ops", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(PAGES / "models.py", title="Models", icon=":material/model_training:"),
        st.Page(PAGES / "deployments.py", title="Deployments", icon=":material/rocket_launch:"),
    ]
)
navigation.run()
