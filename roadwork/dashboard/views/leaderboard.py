"""Leaderboard: the latest good standings with our UID highlighted, places and incentive over time, how incentive
is spread, and a staleness badge when the last poll failed."""

import pandas as pd
import streamlit as st

from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import leaderboard as charts
from roadwork.dashboard.queries import leaderboard as queries
from roadwork.platform.standings import is_sample

OURS_STYLE = "background-color: rgba(214, 39, 40, 0.18); font-weight: bold"
COMPETITORS_BY_DEFAULT = 3

st.title("Leaderboard")
board = queries.leaderboard()
good, standing, uid = board.good, board.standing, board.our_uid

if board.stale:
    st.badge("stale", icon=":material/sync_problem:", color="orange", help="The last poll of the standings failed.")
    last_good = f"the last good snapshot was taken {good.taken_at:%Y-%m-%d %H:%M}" if good else "no poll has succeeded"
    st.warning(f"The last poll ({board.stale_at:%Y-%m-%d %H:%M}) failed: {fmt.md(board.stale_error)}. Showing what was "
               f"known before: {last_good}.", icon=":material/warning:")
if good is None:
    st.info("No standings yet: set `leaderboard.source` and let the `leaderboard` job poll "
            "(`roadwork jobs run leaderboard`).", icon=":material/info:")
    st.stop()

if is_sample(good.source):
    st.badge("sample data", icon=":material/science:", color="violet",
             help="The demo's sample standings, not the network's: set `leaderboard.source` to poll the subnet.")
st.caption(f"Snapshot #{good.id} from {fmt.md(good.source)}, netuid {good.netuid}"
           + (f", block {good.block}" if good.block is not None else "")
           + f", taken {good.taken_at:%Y-%m-%d %H:%M} (local time, {fmt.local_tz_name()}).")

# --- where we stand ----------------------------------------------------------------------------------------------
if uid is None:
    st.caption("Set `uid` in the settings to see where we stand.")
elif not standing.found:
    st.warning(f"UID {uid} is not in this snapshot (deregistered, or a wrong `uid` setting?).",
               icon=":material/person_off:")
else:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Place of UID {uid}", f"{standing.rank} of {standing.miners}")
    c2.metric("Incentive", f"{standing.incentive or 0.0:.4f}")
    c3.metric("Percentile", f"{standing.percentile:.0%}")
    c4.metric("Gap to the next place", fmt.NO_VALUE if standing.gap_to_next is None else f"{standing.gap_to_next:.4f}")

# --- the table ---------------------------------------------------------------------------------------------------
table = pd.DataFrame(
    [
        {
            "place": m.place,
            "uid": m.uid,
            "us": m.ours,
            "incentive": m.incentive,
            "emission (alpha/epoch)": m.emission,
            "trust": m.trust,
            "consensus": m.consensus,
            "stake (alpha)": m.stake,
            "chain rank": m.chain_rank,
            "validator or owner": m.validator,
            "active": m.active,
            "hotkey": m.hotkey,
        }
        for m in board.miners
    ]
)
st.dataframe(
    table.style.apply(lambda row: [OURS_STYLE if row["us"] else ""] * len(row), axis=1),
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="lb_table",
    column_config={
        "place": st.column_config.NumberColumn("place", format="%d",
                                               help="Among miners by incentive; ties share a place."),
        "us": st.column_config.CheckboxColumn("us"),
        "incentive": st.column_config.NumberColumn(format="%.4f"),
        "emission (alpha/epoch)": st.column_config.NumberColumn(format="%.4f", help="Alpha (the subnet's token), "
                                                                "not TAO, per epoch."),
        "stake (alpha)": st.column_config.NumberColumn(format="%.2f", help="Alpha (the subnet's token), not TAO."),
        "chain rank": st.column_config.NumberColumn(help="The chain's rank field where a source sends it (btcli and "
                                                    "Taostats do not; Taostats' own `rank` is a list position): "
                                                    "a consensus weight, not a place."),
    },
)
st.caption("Click a column header to sort. Validators and the subnet owner have no place: only miners are ranked.")

# --- over time ---------------------------------------------------------------------------------------------------
st.subheader("Over time")
miners = [m for m in board.miners if m.place is not None]
default = ([uid] if standing and standing.found else []) + [m.uid for m in miners if m.uid != uid][
    :COMPETITORS_BY_DEFAULT]
chosen = st.multiselect("UIDs", [m.uid for m in board.miners], default=default,
                        format_func=lambda u: f"{u} (us)" if u == uid else str(u), key="lb_uids")
if chosen:
    history = queries.trends(chosen)

    def name(u: int) -> str:
        return f"UID {u}" + (" (us)" if u == uid else "")

    ours = name(uid) if uid in chosen else None
    left, right = st.columns(2)
    left.plotly_chart(
        charts.standing_lines({name(u): [(p.taken_at, p.rank) for p in history[u]] for u in chosen},
                              ours=ours, y_title="place", reverse=True),
        key="lb_place_chart",
    )
    right.plotly_chart(
        charts.standing_lines({name(u): [(p.taken_at, p.incentive) for p in history[u]] for u in chosen},
                              ours=ours, y_title="incentive"),
        key="lb_incentive_chart",
    )
else:
    st.caption("Choose UIDs to compare.")

# --- distribution ------------------------------------------------------------------------------------------------
st.subheader("Incentive across miners")
st.plotly_chart(
    charts.incentive_histogram([m.incentive or 0.0 for m in miners],
                               standing.incentive if standing and standing.found else None),
    key="lb_histogram",
)
