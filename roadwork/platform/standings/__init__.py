"""Standings on the network: where every miner of the subnet stands, polled into snapshots, and ours.

- `sources`: Taostats API, btcli JSON, any JSON URL -> `MinerRow`s (parsing rules: `parsing`).
- `store`: `poll_standings` writes a snapshot (stale with the reason when the poll fails); readers.
- `analysis`: `derive_standing` (our rank among miners) and `check_alerts`, pure.
- `job`: `leaderboard_job`, registered by the scheduler as `roadwork.platform.standings:leaderboard_job`.
"""

from roadwork.platform.standings.analysis import (
    ALERT_DEREGISTRATION,
    ALERT_MISSING,
    ALERT_RANK_DROP,
    ALERT_STALE,
    Alert,
    Standing,
    check_alerts,
    derive_standing,
    stale_standing,
)
from roadwork.platform.standings.http import RateLimiter
from roadwork.platform.standings.job import leaderboard_job
from roadwork.platform.standings.parsing import RAO_PER_TAO, Fetched, MinerRow, StandingsError
from roadwork.platform.standings.sources import (
    BtcliSource,
    JsonSource,
    Source,
    TaostatsSource,
    source_from_settings,
)
from roadwork.platform.standings.store import (
    HistoryPoint,
    PollResult,
    Snapshot,
    TrendPoint,
    history_for,
    latest_snapshot,
    poll_standings,
    trend,
)

__all__ = [
    "ALERT_DEREGISTRATION", "ALERT_MISSING", "ALERT_RANK_DROP", "ALERT_STALE", "RAO_PER_TAO",
    "Alert", "BtcliSource", "Fetched", "HistoryPoint", "JsonSource", "MinerRow", "PollResult", "RateLimiter",
    "Snapshot", "Source", "Standing", "StandingsError", "TaostatsSource", "TrendPoint",
    "check_alerts", "derive_standing", "history_for", "latest_snapshot", "leaderboard_job", "poll_standings",
    "source_from_settings", "stale_standing", "trend",
]
