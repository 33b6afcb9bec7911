"""What the Ablations page reads: stored `roadwork ablate` studies, and pure helpers that shape them for display.

The page is read-only: nothing here writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import streamlit as st

from roadwork.dashboard.context import CACHE_TTL_S, db_url, engine_for
from roadwork.dashboard.formatting import local
from roadwork.db.repo import ablations as store
from roadwork.db.repo.ablations import BASE, AblationRow, AblationStudy
from roadwork.db.engine import read_session
from roadwork.trainer.config import COMPONENTS

STUDIES_SHOWN = 50
CREATE_COMMAND = ("roadwork ablate --config configs/tiny.yaml --components gps_sampling,augmentation "
                  "--seeds 0,1,2")


@dataclass(frozen=True)
class Switch:
    """One switchable component as the base config has it."""

    component: str  # a key of trainer.config.COMPONENTS
    key: str  # dotted config key, e.g. "sampling.gps.enabled"
    value: Any  # the base config's value; None where the config lacks the key
    state: str  # on | off | other (neither of the two values the ablation flips between)
    studied: bool  # flipped by this study


# --- reads -----------------------------------------------------------------------------------------------------


def _local_study(study: AblationStudy) -> AblationStudy:
    rows = tuple(dataclasses.replace(r, created_at=local(r.created_at)) for r in study.rows)
    return dataclasses.replace(study, created_at=local(study.created_at), finished_at=local(study.finished_at),
                               rows=rows)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _studies(url: str, limit: int) -> list[AblationStudy]:
    with read_session(engine_for(url)) as session:
        return [_local_study(s) for s in store.list_studies(session, limit)]


def studies(limit: int = STUDIES_SHOWN) -> list[AblationStudy]:
    """The newest `limit` studies with their rows, newest first (times local)."""
    return _studies(db_url(), limit)


# --- display helpers (pure) --------------------------------------------------------------------------------------


def ci_text(row: AblationRow) -> str:
    """The 95% CI of a variant's delta as "lo..hi", "n/a" with one seed, "" for the base row."""
    if row.delta is None:
        return ""
    return "n/a" if row.ci_low is None or row.ci_high is None else f"{row.ci_low:+.3f}..{row.ci_high:+.3f}"


def seed_column(seed: int) -> str:
    return f"MCC seed {seed}"


def table_rows(study: AblationStudy) -> list[dict[str, Any]]:
    """One dict per row of the study (base first): component, direction, MCC per seed, mean, delta, CI."""
    rows = []
    for r in study.rows:
        per_seed = {seed_column(s): (r.mcc[i] if i < len(r.mcc) else None) for i, s in enumerate(study.seeds)}
        rows.append({"component": r.component, "direction": r.direction, **per_seed, "mean MCC": r.mean_mcc,
                     "delta": r.delta, "95% CI": ci_text(r), "seconds": r.seconds})
    return rows


def variants(study: AblationStudy) -> list[AblationRow]:
    """The study's variant rows (every row but the base), in the order they finished."""
    return [r for r in study.rows if r.direction != BASE and r.delta is not None]


def not_run(study: AblationStudy) -> list[str]:
    """Components the study asked for that have no row (yet, or because it failed)."""
    done = {r.component for r in study.rows}
    return [c for c in study.components if c not in done]


def _dotted(config: dict[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def key_switches(config: dict[str, Any], studied: list[str] | tuple[str, ...] = ()) -> list[Switch]:
    """Every switchable component (trainer.config.COMPONENTS, in its order) as `config` sets it."""
    switches = []
    for component, (key, on, off) in COMPONENTS.items():
        value = _dotted(config, key)
        state = "on" if value == on else "off" if value == off else "other"
        switches.append(Switch(component, key, value, state, component in studied))
    return switches
