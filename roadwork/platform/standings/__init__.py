"""Standings on the network: where every miner of the subnet stands, polled into snapshots, and ours.

Every amount (stake, emission) is in alpha, the subnet's own token; a TAO value only where a source gives a
price (btcli's `rate`, Taostats' `_as_tao` fields, kept in a row's `extra`).

- `sources`: Taostats API, any JSON URL -> `MinerRow`s (parsing rules: `parsing`); `btcli`: btcli's JSON.
- `store`: `poll_standings` writes a snapshot (stale with the reason when the poll fails); readers.
- `analysis`: `derive_standing` (our rank among miners only) and `check_alerts`, pure.
- `report`: `standings_report`, what `roadwork standings` prints.
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
    is_miner,
    stale_standing,
)
from roadwork.platform.standings.btcli import BtcliSource, default_command
from roadwork.platform.standings.http import RateLimiter
from roadwork.platform.standings.job import leaderboard_job
from roadwork.platform.standings.parsing import (
    RAO_PER_ALPHA,
    RAO_PER_TAO,
    Fetched,
    MinerRow,
    StandingsError,
)
from roadwork.platform.standings.report import REPORT_KEYS, standings_report
from roadwork.platform.standings.sources import (
    JsonSource,
    Source,
    TaostatsSource,
    source_from_settings,
)
from roadwork.platform.standings.store import (
    OWNER_KEY,
    SAMPLE_SUFFIX,
    HistoryPoint,
    PollResult,
    Snapshot,
    TrendPoint,
    history_for,
    is_sample,
    latest_snapshot,
    poll_standings,
    trend,
)

__all__ = [
    "ALERT_DEREGISTRATION", "ALERT_MISSING", "ALERT_RANK_DROP", "ALERT_STALE", "OWNER_KEY", "RAO_PER_ALPHA",
    "RAO_PER_TAO", "REPORT_KEYS", "SAMPLE_SUFFIX",
    "Alert", "BtcliSource", "Fetched", "HistoryPoint", "JsonSource", "MinerRow", "PollResult", "RateLimiter",
    "Snapshot", "Source", "Standing", "StandingsError", "TaostatsSource", "TrendPoint",
    "check_alerts", "default_command", "derive_standing", "history_for", "is_miner", "is_sample", "latest_snapshot",
    "leaderboard_job", "poll_standings", "source_from_settings", "stale_standing", "standings_report", "trend",
]
