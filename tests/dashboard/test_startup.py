"""No page of the dashboard pulls in the model stack: each page, rendered alone in a fresh interpreter, leaves
torch, transformers, scipy, scikit-learn, OpenCV and pyarrow out of `sys.modules` (but for the pyarrow that
Streamlit and pandas import to send a table to the browser).

Every page shows stored results (numbers, charts, thumbnails); none runs a model. Importing the model stack costs
seconds on a page's first render and memory in the dashboard's process for as long as it runs. Each page runs in
its own subprocess because an earlier page's imports would hide a later page's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from roadwork.db import models as m
from roadwork.db.engine import make_engine, write_session
from roadwork.settings import load_settings
from tests.conftest import ROOT
from tests.dashboard.conftest import OPS_OPERATOR
from tests.dashboard.ops_seed import OpsSeed

HEAVY = ("torch", "transformers", "scipy", "sklearn", "cv2", "pyarrow")
VIEWS = sorted(p.name for p in (ROOT / "roadwork" / "dashboard" / "views").glob("*.py"))

# Streamlit sends every table (`st.dataframe`, a pandas Styler too) to the browser as Arrow: pyarrow imported by
# Streamlit or pandas is the cost of showing a table at all, not of a page.
TABLE_STACK = {"pyarrow": (f"{os.sep}streamlit{os.sep}", f"{os.sep}pandas{os.sep}")}

# Renders one page signed in as an operator; prints what it raised and, for each heavy module it imported, the file
# that imported it first (found by a meta-path finder that only looks and never finds).
CHILD = """
import json, sys
from streamlit.testing.v1 import AppTest
from roadwork.clock import utcnow
from roadwork.dashboard import auth

page, username, heavy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
importers = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in heavy and name not in importers:
            frame = sys._getframe(1)
            while frame.f_code.co_filename.startswith("<frozen") or "importlib" in frame.f_code.co_filename:
                frame = frame.f_back
            importers[name] = frame.f_code.co_filename
        return None

sys.meta_path.insert(0, Watch())
at = AppTest.from_file(page, default_timeout=120)
at.session_state[auth.SESSION_KEY] = auth.SignedIn(username, "operator", utcnow() + auth.SESSION_LIFETIME)
at.run()
print(json.dumps({"exceptions": [str(e.value) for e in at.exception], "titles": [t.value for t in at.title],
                  "heavy": {name: importers.get(name, "?") for name in heavy if name in sys.modules}}))
"""


def _render_alone(page: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", CHILD, str(ROOT / "roadwork" / "dashboard" / "views" / page), OPS_OPERATOR,
               ",".join(HEAVY)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("page", VIEWS)
def test_page_imports_no_model_stack(ops_home: OpsSeed, tmp_path: Path, page: str) -> None:
    if page == "hard_negatives.py":
        # The gallery's thumbnails of a parquet pool are read by the trainer's reader (pyarrow, and torch with it),
        # only when a pool is on this machine; the sets, counts and items shown by id need neither.
        engine = make_engine(load_settings().db_url)
        with write_session(engine) as session:
            session.execute(update(m.HardNegativeSet).values(pool=str(tmp_path / "pool-elsewhere")))
        engine.dispose()
    shown = _render_alone(page)
    assert not shown["exceptions"], f"{page}: {shown['exceptions']}"
    assert shown["titles"], f"{page} rendered no title"
    ours = {name: by for name, by in shown["heavy"].items()
            if not any(part in by for part in TABLE_STACK.get(name, ()))}
    assert not ours, f"{page} imports " + ", ".join(f"{name} (first imported by {by})" for name, by in ours.items())
