"""Entrypoint of the Roadwork Ops dashboard: `streamlit run roadwork/dashboard/app.py`.

It signs the session in (`auth.require_login`) and builds the navigation; each page is a thin script under
`views/` that reads through the service modules. (Not `pages/`: Streamlit would treat that folder as a legacy
multipage app and serve a page requested by URL without this entrypoint, hence without the sign-in gate.)
"""

import sys
from pathlib import Path

# `streamlit run` puts this file's folder on sys.path, not the repository root; without an installed package
# the absolute `roadwork.` imports of the pages need the root.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

import streamlit as st  # noqa: E402

from roadwork.dashboard import auth, services  # noqa: E402

PAGES = Path(__file__).with_name("views")

st.set_page_config(page_title="Roadwork Ops", layout="wide")
user = auth.require_login()  # nobody signed in: the sign-in form only, and the run stops here
navigation = st.navigation(
    [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(PAGES / "models.py", title="Models", icon=":material/model_training:"),
        st.Page(PAGES / "deployments.py", title="Deployments", icon=":material/rocket_launch:"),
        st.Page(PAGES / "jobs.py", title="Jobs", icon=":material/schedule:"),
        st.Page(PAGES / "ab_tests.py", title="A/B tests", icon=":material/compare_arrows:"),
        st.Page(PAGES / "ablations.py", title="Ablations", icon=":material/science:"),
        st.Page(PAGES / "hard_negatives.py", title="Hard negatives", icon=":material/image_search:"),
        st.Page(PAGES / "leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
        # Listed for operators only; a viewer who opens its URL gets "operators only" from the page itself.
        st.Page(PAGES / "users.py", title="Users", icon=":material/group:",
                visibility="visible" if user.role == "operator" else "hidden"),
    ]
)
auth.sign_out_button()
# No page shows a champion that is not what is published: an interrupted deploy is repaired first.
published = services.reconcile_published()
for message in published.repaired:
    st.info(f"Repaired after an interrupted deploy: {message}", icon=":material/build:")
for message in published.alerts:
    st.error(f"The champion is not what is published: {message}. See Deployments > audit.", icon=":material/error:")
if published.skipped:
    st.caption(f"Champion check skipped: {published.skipped}.")
navigation.run()
