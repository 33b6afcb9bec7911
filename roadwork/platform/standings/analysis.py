"""Where we stand among the miners, and what deserves an alert. Pure functions of rows and settings.

Our position is derived, not read: the chain's `rank` field is a consensus weight, not a place in a table.
Rules of `derive_standing`:
- Miners are the rows that are neither the subnet owner's (`owner` true) nor a validator's: a validator has
  a validator permit where the source says (Taostats) or earns dividends (btcli says nothing of permits);
  validators earn dividends, miners incentive. Unknown counts as a miner. Our own row always counts as a
  miner, whatever it says.
- Miners are ranked by incentive, highest first; a missing incentive counts as 0. Ties share a rank
  (competition ranking, "1224"): rank = 1 + the number of miners with strictly higher incentive.
- percentile = the share of the other miners with strictly lower incentive: 1.0 at the top, 0.0 at the
  bottom (1.0 when we are the only miner).
- gap_to_top = the top incentive minus ours; gap_to_next = the lowest incentive above ours minus ours (the
  incentive to gain for the next better rank), None when nobody is above us.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from roadwork.platform.standings.parsing import MinerRow
from roadwork.settings import Settings

ALERT_MISSING = "uid_missing"
ALERT_RANK_DROP = "rank_drop"
ALERT_DEREGISTRATION = "deregistration_risk"
ALERT_STALE = "stale"


@dataclass(frozen=True)
class Standing:
    """Our place among the miners of one snapshot. `found` False: our uid is unset or not in the snapshot.
    `stale` True: the latest poll failed (`error` says why) and the numbers are from the last good one."""

    uid: int | None
    found: bool
    miners: int = 0
    rank: int | None = None
    percentile: float | None = None
    incentive: float | None = None
    emission: float | None = None  # alpha per epoch
    stake: float | None = None  # alpha
    trust: float | None = None
    top_incentive: float | None = None
    gap_to_top: float | None = None
    gap_to_next: float | None = None
    hotkey: str | None = None
    stale: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str
    details: dict[str, Any]


def is_miner(row: MinerRow, our_uid: int | None = None) -> bool:
    """Whether `row` competes as a miner (rules: module doc); `our_uid`'s row always does."""
    if row.uid == our_uid:
        return True
    return row.owner is not True and row.validator_permit is not True and not (row.dividends or 0.0) > 0.0


def derive_standing(rows: Sequence[MinerRow], our_uid: int | None) -> Standing:
    """Our rank, percentile, incentive, emission and gaps among the miners of `rows` (rules: module doc)."""
    miners = [row for row in rows if is_miner(row, our_uid)]
    ours = next((row for row in miners if row.uid == our_uid), None) if our_uid is not None else None
    if ours is None:
        return Standing(uid=our_uid, found=False, miners=len(miners))
    mine = ours.incentive or 0.0
    incentives = [row.incentive or 0.0 for row in miners]
    above = [value for value in incentives if value > mine]
    below = sum(1 for value in incentives if value < mine)
    top = max(incentives)
    return Standing(
        uid=our_uid,
        found=True,
        miners=len(miners),
        rank=1 + len(above),
        percentile=below / (len(miners) - 1) if len(miners) > 1 else 1.0,
        incentive=ours.incentive,
        emission=ours.emission,
        stake=ours.stake,
        trust=ours.trust,
        top_incentive=top,
        gap_to_top=top - mine,
        gap_to_next=min(above) - mine if above else None,
        hotkey=ours.hotkey,
    )


def stale_standing(last_good: Standing | None, uid: int | None, error: str | None) -> Standing:
    """The standing to show after a failed poll: the last good one (if any), marked stale with the reason."""
    base = last_good if last_good is not None else Standing(uid=uid, found=False)
    return dataclasses.replace(base, stale=True, error=error)


def check_alerts(previous: Standing | None, current: Standing | None, settings: Settings) -> list[Alert]:
    """Alerts of `current` against `previous` (the last good standing before it).

    - `stale`: the poll failed; nothing else is judged on old numbers.
    - `uid_missing`: our uid is set but absent from the snapshot (deregistered, or a wrong uid).
    - `rank_drop`: our rank worsened by at least `leaderboard.rank_drop_alert` places.
    - `deregistration_risk`: our percentile is below `leaderboard.deregistration_percentile` (bottom share
      of the miners by incentive; needs at least two miners)."""
    if current is None:
        return []
    lb = settings.leaderboard
    if current.stale:
        return [Alert(ALERT_STALE, f"standings poll failed, showing the last good snapshot: {current.error}",
                      {"error": current.error})]
    if current.uid is None:
        return []
    if not current.found:
        return [Alert(ALERT_MISSING, f"UID {current.uid} is not in the latest snapshot (deregistered?)",
                      {"uid": current.uid, "miners": current.miners})]
    alerts = []
    if previous is not None and previous.found and previous.uid == current.uid and previous.rank is not None:
        drop = (current.rank or 0) - previous.rank
        if drop >= lb.rank_drop_alert:
            alerts.append(Alert(ALERT_RANK_DROP, f"UID {current.uid} fell from rank {previous.rank} to "
                                f"{current.rank} of {current.miners} miners",
                                {"uid": current.uid, "previous_rank": previous.rank, "rank": current.rank,
                                 "drop": drop, "threshold": lb.rank_drop_alert}))
    if current.miners > 1 and current.percentile is not None and current.percentile < lb.deregistration_percentile:
        alerts.append(Alert(ALERT_DEREGISTRATION, f"UID {current.uid} is in the bottom "
                            f"{lb.deregistration_percentile:.0%} of miners by incentive (rank {current.rank} of "
                            f"{current.miners}): deregistration risk",
                            {"uid": current.uid, "rank": current.rank, "miners": current.miners,
                             "percentile": current.percentile, "incentive": current.incentive,
                             "threshold": lb.deregistration_percentile}))
    return alerts
