"""Standings client against a real local HTTP server (no mocks of requests), btcli JSON from files and
commands (a stand-in `btcli` on PATH that behaves as release 9.23 does), the pure standing/alert rules on
hand-computed cases, `roadwork standings`, and the leaderboard job end to end.

The fixtures (tests/fixtures/standings, written by its make_fixtures.py from COMPETITION.md) hold one subnet:
uid 0 the owner's hotkey (incentive 0.40, as a burn UID takes), uids 1-2 validators (dividends), uids 3-7
miners with incentive .22 .18 .12 .08 0; ours is uid 5: 3rd of 5 miners."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from roadwork.cli.app import app
from roadwork.db import repo
from roadwork.db.engine import get_engine, read_session
from roadwork.platform import standings as st
from roadwork.platform.standings.parsing import normalise_u16, to_bool, to_float, to_int
from roadwork.settings import Settings, load_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "standings"
PAGE = json.loads((FIXTURES / "taostats_page.json").read_text())
BTCLI = FIXTURES / "btcli_show.json"  # one line, as btcli prints it with COLUMNS set very large
BTCLI_WRAPPED = FIXTURES / "btcli_show_wrapped80.txt"  # the same, wrapped at 80 columns as through a pipe
BLOCK = 6_120_431
OURS = 5
ALL_UIDS = list(range(8))
API_PATH = "/api/metagraph/latest/v1"
KEY = "tsk-SECRET-4f1c9e7a2b"


# --- the local server ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    authorization: str | None


class LocalServer:
    """`ThreadingHTTPServer` on 127.0.0.1, port 0. Each test sets `respond(n, path, query) -> Reply` (n counts
    requests from 1) and reads `requests`."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.respond: Callable[[int, str, dict[str, str]], Reply] = lambda n, path, query: Reply(body=PAGE)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def record(self, seen: Seen) -> int:
        with self._lock:
            self.requests.append(seen)
            return len(self.requests)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            n = server.record(Seen(parts.path, query, self.headers.get("Authorization")))
            reply = server.respond(n, parts.path, query)
            time.sleep(reply.delay_s)
            body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # requests must talk to 127.0.0.1 directly
    srv = LocalServer()
    yield srv
    srv.close()


class FakeTime:
    """A clock that only moves when slept; sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def waits(self) -> list[float]:
        """Sleeps longer than the tiny rate-limit interval the tests use by default."""
        return [round(s, 3) for s in self.sleeps if s > 0.001]


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def taostats(server: LocalServer, fake: FakeTime, **kwargs: Any) -> st.TaostatsSource:
    options: dict[str, Any] = {"timeout_s": 2.0, "retries": 2, "calls_per_minute": 1e6} | kwargs
    return st.TaostatsSource(server.url, KEY, 72, sleep=fake.sleep, clock=fake.clock, **options)


def page_of(rows: list[dict[str, Any]], **pagination: Any) -> dict[str, Any]:
    return {"pagination": pagination, "data": rows}


def by_uid(rows: tuple[st.MinerRow, ...]) -> dict[int, st.MinerRow]:
    return {row.uid: row for row in rows}


# --- Taostats ------------------------------------------------------------------------------------------------


def test_taostats_good_page_is_parsed_in_alpha_and_authorised(server: LocalServer, fake: FakeTime) -> None:
    fetched = taostats(server, fake).fetch()
    rows = by_uid(fetched.rows)
    assert sorted(rows) == ALL_UIDS and fetched.skipped == 0
    assert fetched.block == BLOCK  # the highest block_number of the rows
    owner, validator, ours = rows[0], rows[1], rows[OURS]
    assert owner.owner is True and owner.validator_permit is False and owner.incentive == pytest.approx(0.40)
    assert validator.validator_permit is True and validator.owner is False
    assert validator.stake == pytest.approx(250_000 + 0.18 * 40_000)  # total_alpha_stake, rao -> alpha
    assert ours.hotkey == PAGE["data"][OURS]["hotkey"]["ss58"]  # ss58 of {ss58, hex}
    assert ours.emission == pytest.approx(8.86) and ours.stake == pytest.approx(1.5)  # alpha, not rao nor TAO
    assert ours.incentive == pytest.approx(0.12) and ours.trust == pytest.approx(0.95)
    assert ours.active is True and ours.validator_permit is False and ours.owner is False
    assert ours.rank is None  # Taostats' `rank` is its list position, not the chain's rank
    assert ours.extra["taostats_rank"] == PAGE["data"][OURS]["rank"] == 6 and "rank" not in ours.extra
    assert "stake" not in ours.extra  # always "0" at Taostats: dropped, the stake is total_alpha_stake
    assert validator.extra["validator_trust"] == "0.9800"  # kept as received, like every field we do not model
    assert ours.extra["daily_mining_alpha_as_tao"] == PAGE["data"][OURS]["daily_mining_alpha_as_tao"]
    assert ours.extra["is_immunity_period"] is False and "timestamp" in ours.extra
    assert "netuid" not in ours.extra and "block_number" not in ours.extra
    assert st.derive_standing(fetched.rows, OURS).rank == 3  # among miners 3-7: owner and validators excluded
    [seen] = server.requests
    assert seen.path == API_PATH and seen.query == {"netuid": "72", "limit": "256", "page": "1"}
    assert seen.authorization == KEY


def _three_pages(style: str) -> Callable[[int, str, dict[str, str]], Reply]:
    rows = PAGE["data"]

    def respond(n: int, path: str, query: dict[str, str]) -> Reply:
        page = int(query["page"])
        chunk = rows[(page - 1) * 3 : page * 3]
        pagination = {
            "next_page": {"next_page": page + 1 if page < 3 else None, "total_pages": 3},
            "total_pages": {"current_page": str(page), "total_pages": "3"},
            "total_items": {"total_items": 8},
        }[style]
        return Reply(body=page_of(chunk, **pagination))

    return respond


@pytest.mark.parametrize("style", ["next_page", "total_pages", "total_items"])
def test_taostats_follows_three_pages_within_the_rate_limit(server: LocalServer, fake: FakeTime, style: str) -> None:
    server.respond = _three_pages(style)
    fetched = taostats(server, fake, calls_per_minute=30).fetch()  # one call per 2 s
    assert sorted(by_uid(fetched.rows)) == ALL_UIDS
    assert [r.query["page"] for r in server.requests] == ["1", "2", "3"]
    assert fake.waits() == [2.0, 2.0]


def test_taostats_stops_at_an_empty_page(server: LocalServer, fake: FakeTime) -> None:
    rows = PAGE["data"]
    server.respond = lambda n, path, q: Reply(body=page_of(rows[(int(q["page"]) - 1) * 3 : int(q["page"]) * 3],
                                                           total_pages=9))
    fetched = taostats(server, fake).fetch()
    assert len(fetched.rows) == 8 and len(server.requests) == 4


def test_numbers_as_strings_missing_and_extra_fields(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(body=page_of([
        {"uid": "1", "incentive": "0.5", "emission": "1000000000", "total_alpha_stake": "2,000,000,000.5",
         "stake": "0", "hotkey": "5Plain",
         "validator_permit": "false", "active": "1", "shiny_new_field": {"a": 1}},
        {"uid": 2},
        {"hotkey": "5NoUid"},
        {"uid": "abc"},
        "not a row",
        {"uid": 1, "incentive": "0.9"},  # a duplicate uid
        {"uid": 4, "netuid": 1},  # another subnet
        {"uid": 5.0, "incentive": "NaN", "trust": "", "consensus": None, "hotkey": {"hex": "0x" + "ab" * 32}},
    ]))
    fetched = taostats(server, fake).fetch()
    rows = by_uid(fetched.rows)
    assert sorted(rows) == [1, 2, 5] and fetched.skipped == 5 and fetched.block is None
    one = rows[1]
    assert (one.incentive, one.emission) == (0.5, 1.0) and one.stake == pytest.approx(2.0)
    assert (one.hotkey, one.validator_permit, one.active) == ("5Plain", False, True)
    assert one.extra == {"shiny_new_field": {"a": 1}}
    assert rows[2] == st.MinerRow(uid=2)
    five = rows[5]
    assert five.incentive is None and five.trust is None and five.consensus is None
    assert five.hotkey is None and five.extra["hotkey"] == {"hex": "0x" + "ab" * 32}  # too long for the column


def test_empty_data_is_an_error(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(body=page_of([], total_items=0))
    with pytest.raises(st.StandingsError, match="no rows"):
        taostats(server, fake).fetch()


def test_slow_response_times_out_and_is_retried(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(body=PAGE, delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(st.StandingsError, match=r"timed out after 0.2 s.*gave up after 2 attempt"):
        taostats(server, fake, timeout_s=0.2, retries=1).fetch()
    assert time.monotonic() - started < 0.9
    assert len(server.requests) == 2 and fake.waits() == [1.0]


def test_5xx_then_success_is_retried_with_backoff(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(503, {"error": "busy"}) if n <= 2 else Reply(body=PAGE)
    fetched = taostats(server, fake, retries=2).fetch()
    assert len(fetched.rows) == 8 and len(server.requests) == 3
    assert fake.waits() == [1.0, 2.0]


def test_persistent_5xx_gives_up_and_keeps_the_last_good_snapshot(
    server: LocalServer, fake: FakeTime, engine: Engine, settings: Settings
) -> None:
    good = st.poll_standings(engine, settings, source=taostats(server, fake))
    assert not good.stale and len(good.rows) == 8
    server.respond = lambda n, path, q: Reply(500, {"error": "down"})
    bad = st.poll_standings(engine, settings, source=taostats(server, fake, retries=2))
    assert bad.stale and "HTTP 500" in bad.error and "gave up after 3 attempt" in bad.error
    assert len(server.requests) == 1 + 3
    with read_session(engine) as session:
        latest_good = st.latest_snapshot(session)
        latest_any = st.latest_snapshot(session, good_only=False)
    assert latest_good.id == good.snapshot_id and len(latest_good.rows) == 8 and latest_good.block == BLOCK
    assert by_uid(latest_good.rows)[0].owner is True  # the owner flag survives the store
    assert latest_any.id == bad.snapshot_id and latest_any.stale and latest_any.rows == ()
    assert latest_any.error == bad.error


def test_429_waits_for_retry_after_then_succeeds(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(429, {"error": "slow down"}, {"Retry-After": "7"}) if n == 1 \
        else Reply(body=PAGE)
    assert len(taostats(server, fake).fetch().rows) == 8
    assert fake.waits() == [7.0]


def test_persistent_429_gives_up(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(429, {"error": "slow down"})
    with pytest.raises(st.StandingsError, match="429"):
        taostats(server, fake, retries=2).fetch()
    assert len(server.requests) == 3 and fake.waits() == [1.0, 2.0]  # no Retry-After: backoff


def test_4xx_is_not_retried_and_the_key_never_leaks(
    server: LocalServer, fake: FakeTime, engine: Engine, clean_env: pytest.MonkeyPatch,
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clean_env.setenv("ROADWORK_LEADERBOARD_API_KEY", KEY)
    settings = load_settings()
    # A server that echoes the key it was sent, as some error pages do.
    server.respond = lambda n, path, q: Reply(401, {"error": f"invalid api key {server.requests[-1].authorization}"})
    result = st.poll_standings(engine, settings, source=taostats(server, fake))
    assert result.stale and "HTTP 401" in result.error and "ROADWORK_LEADERBOARD_API_KEY" in result.error
    assert len(server.requests) == 1 and server.requests[0].authorization == KEY  # a 401 is not retried
    assert KEY not in result.error and "***" in result.error
    assert KEY not in repr(taostats(server, fake))
    with pytest.raises(st.StandingsError) as raised:  # the source redacts on its own, settings or not
        taostats(server, fake).fetch()
    assert KEY not in str(raised.value) and "invalid api key ***" in str(raised.value)
    assert caplog.records and all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text


def test_malformed_json_gives_a_stale_snapshot(
    server: LocalServer, fake: FakeTime, engine: Engine, settings: Settings
) -> None:
    good = st.poll_standings(engine, settings, source=taostats(server, fake))
    server.respond = lambda n, path, q: Reply(body=b'{"data": [ {"uid": 1,')
    bad = st.poll_standings(engine, settings, source=taostats(server, fake))
    assert bad.stale and "not JSON" in bad.error
    with read_session(engine) as session:
        assert st.latest_snapshot(session).id == good.snapshot_id


def test_any_failure_of_a_source_becomes_a_stale_snapshot(engine: Engine, settings: Settings) -> None:
    class Broken:
        name = "broken"

        def fetch(self) -> st.Fetched:
            raise KeyError("surprise")

    result = st.poll_standings(engine, settings, source=Broken())
    assert result.stale and result.error == "KeyError: 'surprise'" and result.source == "broken"
    incomplete = settings.model_copy(update={"leaderboard": settings.leaderboard.model_copy(update={"source": "json"})})
    result = st.poll_standings(engine, incomplete)
    assert result.stale and "set leaderboard.url" in result.error
    with pytest.raises(ValueError, match="none"):
        st.poll_standings(engine, settings)


# --- btcli ---------------------------------------------------------------------------------------------------

# A stand-in for btcli 9.23 on PATH: exits 2 on --json-output without --no-prompt, prompts (exit 1 without a
# terminal) without --mechid, and prints the fixture's one line through a console as wide as COLUMNS says
# (80 when unset, as when piped), so its JSON arrives broken unless the caller widens the terminal.
FAKE_BTCLI = """#!{python}
import os, sys, textwrap
args = sys.argv[1:]
if "--json-output" in args and "--no-prompt" not in args:
    sys.stderr.write("Cannot specify both '--json-output' and '--prompt'\\n")
    sys.exit(2)
if "--mechid" not in args:
    sys.stderr.write("Subnet 72 has 2 mechanisms. Enter the mechanism id: Aborted.\\n")
    sys.exit(1)
with open(os.path.join(os.environ["FAKE_BTCLI_LOG"]), "a") as log:
    log.write(" ".join(args) + "\\n")
width = int(os.environ.get("COLUMNS", "80"))
line = open({fixture!r}).read().strip()
print(textwrap.fill(line, width, break_on_hyphens=False))
"""


@pytest.fixture
def fake_btcli(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """Puts the stand-in `btcli` first on PATH; returns the file where it logs its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "btcli"
    program.write_text(FAKE_BTCLI.format(python=sys.executable, fixture=str(BTCLI)))
    program.chmod(0o755)
    log = tmp_path / "btcli-args.log"
    clean_env.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    clean_env.setenv("FAKE_BTCLI_LOG", str(log))
    clean_env.delenv("COLUMNS", raising=False)
    return log


def _check_btcli(fetched: st.Fetched) -> None:
    rows = by_uid(fetched.rows)
    assert sorted(rows) == ALL_UIDS and fetched.block is None and fetched.skipped == 0  # btcli gives no block
    owner, ours = rows[0], rows[OURS]
    assert owner.owner is True and owner.extra["identity"] == "NATIX Network"  # rich markup stripped
    assert [uid for uid, row in rows.items() if row.owner] == [0]
    assert rows[1].dividends == 0.62 and rows[1].validator_permit is None  # btcli says nothing of permits
    assert ours.incentive == 0.12 and ours.emission == 8.86 and ours.stake == 1.5  # `emissions`, alpha as printed
    assert ours.rank is None and ours.trust is None  # btcli 9.23 prints neither
    assert ours.hotkey.startswith("5Hot") and ours.coldkey.startswith("5Cold")
    assert ours.extra["identity"] == "Our Roadwork Miner" and ours.extra["claim_type"] == "Keep"
    assert ours.extra["alpha_stake"] == 1.5 and "emissions" not in ours.extra
    standing = st.derive_standing(fetched.rows, OURS)  # the owner's 0.40 and the validators do not count
    assert (standing.rank, standing.miners, standing.percentile) == (3, 5, 0.5)


def test_btcli_real_json_from_a_file() -> None:
    _check_btcli(st.BtcliSource(path=BTCLI, netuid=72).fetch())


def test_btcli_json_from_a_command_with_chatter_before_it() -> None:
    code = f"import sys; print('Connecting to finney...'); sys.stdout.write(open({str(BTCLI)!r}).read())"
    _check_btcli(st.BtcliSource(command=shlex.join([sys.executable, "-c", code]), timeout_s=30).fetch())


def test_btcli_default_command_is_built_from_the_netuid_and_run_wide(
    fake_btcli: Path, engine: Engine, settings: Settings
) -> None:
    lb = _settings(settings, source="btcli", netuid=72)
    source = st.source_from_settings(lb)
    assert source.command == ["btcli", "subnets", "show", "--netuid", "72", "--mechid", "0", "--json-output",
                              "--no-prompt"]
    assert st.source_from_settings(_settings(settings, source="btcli", netuid=323)).command[4] == "323"
    result = st.poll_standings(engine, lb)
    assert not result.stale, result.error  # the stand-in wraps at COLUMNS: the source widened it
    _check_btcli(st.Fetched(result.rows))
    assert fake_btcli.read_text().split("\n")[0] == "subnets show --netuid 72 --mechid 0 --json-output --no-prompt"


def test_btcli_wrapped_json_is_refused_and_the_last_good_snapshot_kept(
    fake_btcli: Path, engine: Engine, settings: Settings
) -> None:
    good = st.poll_standings(engine, _settings(settings, source="btcli", url=str(BTCLI)))
    # What a shell pipe gives (`btcli ... > file`): the one line wrapped at 80 columns, the JSON broken.
    with pytest.raises(json.JSONDecodeError):
        json.loads(BTCLI_WRAPPED.read_text())
    bad = st.poll_standings(engine, _settings(settings, source="btcli", url=str(BTCLI_WRAPPED)))
    assert bad.stale and "broken across" in bad.error and "at most 80 columns" in bad.error
    assert "COLUMNS" in bad.error  # says what to do
    # A user's command that does not widen the terminal itself gets it widened too.
    code = "import json, os; print(json.dumps({'uids': [{'uid': int(os.environ['COLUMNS'])}]}))"
    [row] = st.BtcliSource(command=[sys.executable, "-c", code]).fetch().rows
    assert row.uid == 1_000_000
    with read_session(engine) as session:
        assert st.latest_snapshot(session).id == good.snapshot_id


def test_btcli_old_command_without_no_prompt_says_what_to_do(fake_btcli: Path, settings: Settings) -> None:
    old = _settings(settings, source="btcli", command="btcli subnets metagraph --netuid 72 --json-output")
    with pytest.raises(st.StandingsError) as raised:
        st.source_from_settings(old).fetch()
    message = str(raised.value)
    assert "exited with status 2" in message and "Cannot specify both" in message
    assert "--no-prompt" in message and "leave leaderboard.command empty" in message


def test_btcli_plain_list_of_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"UID": 7, "Incentive": "0.4"}, {"uid": None}]))
    fetched = st.BtcliSource(path=path).fetch()
    assert fetched.rows == (st.MinerRow(uid=7, incentive=0.4),) and fetched.skipped == 1


@pytest.mark.parametrize(("code", "message"), [
    ("import sys; sys.stderr.write('wallet not found'); sys.exit(3)", "exited with status 3: wallet not found"),
    ("import time; time.sleep(5)", "timed out after 0.5 s"),
    ("print('Error: no network')", "not JSON: Error: no network"),
    ("print('{\"netuid\": 72, \"uids\": [{\"uid\": 1,')", r"not valid JSON \(Expecting .* at line 2 column 1\); run the command by hand"),
    ("print('{\"netuid\": 1, \"uids\": [{\"uid\": 1}]}')", "netuid 1, expected 72"),
    ("print('{\"netuid\": 72, \"hotkeys\": [\"a\"]}')", "no rows found"),
])
def test_btcli_failures_are_clear(code: str, message: str) -> None:
    source = st.BtcliSource(command=[sys.executable, "-c", code], timeout_s=0.5, netuid=72)
    with pytest.raises(st.StandingsError, match=message):
        source.fetch()


def test_btcli_missing_file_and_missing_program(tmp_path: Path) -> None:
    with pytest.raises(st.StandingsError, match="cannot read"):
        st.BtcliSource(path=tmp_path / "nope.json").fetch()
    with pytest.raises(st.StandingsError, match="command not found"):
        st.BtcliSource(command="no-such-btcli-binary subnets show").fetch()


def test_identity_markup_is_stripped_but_plain_brackets_stay() -> None:
    from roadwork.platform.standings.btcli import strip_markup

    assert strip_markup("[dark_sea_green3]NATIX Network[/dark_sea_green3]") == "NATIX Network"
    assert strip_markup("[bold]x[/]") == "x" and strip_markup("[SN72] miner") == "[SN72] miner"


# --- generic JSON --------------------------------------------------------------------------------------------


def test_json_source_maps_dotted_paths(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(body={"data": [
        {"id": "3", "keys": {"hot": "5Hot3"}, "scores": {"incentive": "0.2", "emission": 0.08}, "height": 99,
         "note": "x"},
        {"id": "4", "keys": {"hot": "5Hot4"}, "scores": {"incentive": 0.1}, "height": 100},
    ]})
    field_map = {"uid": "id", "hotkey": "keys.hot", "incentive": "scores.incentive", "emission": "scores.emission",
                 "block": "height"}
    fetched = st.JsonSource(server.url + "/standings.json", field_map, sleep=fake.sleep, clock=fake.clock).fetch()
    rows = by_uid(fetched.rows)
    assert rows[3] == st.MinerRow(uid=3, hotkey="5Hot3", incentive=0.2, emission=0.08,
                                  extra={"height": 99, "note": "x"})
    assert rows[4].emission is None and fetched.block == 100
    assert server.requests[0].path == "/standings.json" and server.requests[0].authorization is None


def test_json_source_top_level_list_and_bad_field_map(server: LocalServer, fake: FakeTime) -> None:
    server.respond = lambda n, path, q: Reply(body=[{"uid": 1, "incentive": 65535}, {"uid": 2, "incentive": 0}])
    rows = by_uid(st.JsonSource(server.url, sleep=fake.sleep).fetch().rows)
    assert rows[1].incentive == 1.0 and rows[2].incentive == 0.0  # raw u16 normalised to 0-1
    with pytest.raises(st.StandingsError, match="unknown field.*score"):
        st.JsonSource(server.url, {"score": "x"})


def test_value_parsers() -> None:
    assert to_float("τ1,234.5") == 1234.5 and to_float("nan") is None and to_float(True) is None
    assert to_int("42") == 42 and to_int(42.0) == 42 and to_int("4.5") is None and to_int(None) is None
    assert (to_bool("Yes"), to_bool(0), to_bool("maybe")) == (True, False, None)
    rows = normalise_u16([st.MinerRow(uid=1, trust=0.5), st.MinerRow(uid=2, trust=0.25)])
    assert [r.trust for r in rows] == [0.5, 0.25]  # already 0-1: untouched


# --- standing and alerts (pure) ------------------------------------------------------------------------------


def _field() -> list[st.MinerRow]:
    return [
        st.MinerRow(uid=0, incentive=0.0, validator_permit=True),  # validator: excluded
        st.MinerRow(uid=1, incentive=0.40, emission=0.9),
        st.MinerRow(uid=2, incentive=0.25),
        st.MinerRow(uid=3, incentive=0.20, emission=0.5, hotkey="5Ours"),
        st.MinerRow(uid=4, incentive=0.20),  # tie with us
        st.MinerRow(uid=5, incentive=0.10),
        st.MinerRow(uid=6, incentive=None),  # counts as 0
        st.MinerRow(uid=7, incentive=0.05, validator_permit=True),  # validator: excluded
    ]


def test_derive_standing_hand_computed() -> None:
    s = st.derive_standing(_field(), 3)
    # Miners: uids 1-6. Above us: 0.40, 0.25 -> rank 3; below: 0.10, 0 -> 2 of the 5 others.
    assert (s.found, s.miners, s.rank, s.hotkey) == (True, 6, 3, "5Ours")
    assert s.percentile == pytest.approx(2 / 5)
    assert s.gap_to_top == pytest.approx(0.20) and s.gap_to_next == pytest.approx(0.05)
    assert (s.incentive, s.emission) == (0.20, 0.5)
    assert st.derive_standing(_field(), 4).rank == 3  # ties share the rank
    bottom = st.derive_standing(_field(), 6)
    assert (bottom.rank, bottom.percentile, bottom.incentive) == (6, 0.0, None)
    assert bottom.gap_to_next == pytest.approx(0.10)
    top = st.derive_standing(_field(), 1)
    assert (top.rank, top.percentile, top.gap_to_top, top.gap_to_next) == (1, 1.0, 0.0, None)


def test_derive_standing_when_we_are_missing_or_a_validator() -> None:
    assert st.derive_standing(_field(), 99) == st.Standing(uid=99, found=False, miners=6)
    assert st.derive_standing(_field(), None) == st.Standing(uid=None, found=False, miners=6)
    assert st.derive_standing([], 3) == st.Standing(uid=3, found=False, miners=0)
    ours_with_permit = st.derive_standing(_field(), 7)  # our own row counts as a miner, permit or not
    assert (ours_with_permit.miners, ours_with_permit.rank) == (7, 6)


def test_owner_and_validators_are_not_miners() -> None:
    rows = [
        st.MinerRow(uid=0, incentive=0.50, owner=True),  # the owner's hotkey takes incentive (a burn UID)
        st.MinerRow(uid=1, incentive=0.01, dividends=0.7),  # btcli: a validator is known by its dividends
        st.MinerRow(uid=2, incentive=0.30, dividends=0.0, owner=False),
        st.MinerRow(uid=3, incentive=0.20),
        st.MinerRow(uid=4, incentive=0.00),
    ]
    s = st.derive_standing(rows, 3)
    assert (s.miners, s.rank, s.percentile, s.gap_to_top) == (3, 2, 0.5, pytest.approx(0.10))
    assert [r.uid for r in rows if st.is_miner(r)] == [2, 3, 4]
    assert st.derive_standing(rows, 1).rank == 3  # our own row counts as a miner, dividends or not


def test_deregistration_alert_counts_miners_only(settings: Settings) -> None:
    rows = st.BtcliSource(path=BTCLI, netuid=72).fetch().rows
    s = st.derive_standing(rows, 6)  # incentive .08: 4th of the 5 miners, above only uid 7
    assert (s.rank, s.miners, s.percentile) == (4, 5, 0.25)
    [alert] = st.check_alerts(None, s, _settings(settings, deregistration_percentile=0.3))
    assert alert.kind == st.ALERT_DEREGISTRATION and "rank 4 of 5" in alert.message
    # Counting the owner and the validators (incentive 0) would put us at 3 of 7 below: no alert at 0.3.


def _settings(settings: Settings, **leaderboard: Any) -> Settings:
    return settings.model_copy(update={"leaderboard": settings.leaderboard.model_copy(update=leaderboard)})


def test_check_alerts_each_kind(settings: Settings) -> None:
    before, after = st.derive_standing(_field(), 3), st.derive_standing(_field(), 5)  # rank 3 -> 5
    after = st.Standing(**{**after.as_dict(), "uid": 3})
    assert st.check_alerts(before, before, settings) == []
    [drop] = st.check_alerts(before, after, _settings(settings, rank_drop_alert=2))
    assert drop.kind == st.ALERT_RANK_DROP and drop.details["drop"] == 2 and "rank 3 to 5" in drop.message
    assert st.check_alerts(before, after, _settings(settings, rank_drop_alert=3)) == []
    cfg = _settings(settings, rank_drop_alert=2, deregistration_percentile=0.25)
    assert [a.kind for a in st.check_alerts(before, after, cfg)] == [st.ALERT_RANK_DROP, st.ALERT_DEREGISTRATION]
    [dereg] = st.check_alerts(None, st.derive_standing(_field(), 6), cfg)  # percentile 0.0 < 0.25
    assert dereg.kind == st.ALERT_DEREGISTRATION and dereg.details["rank"] == 6
    assert st.check_alerts(None, st.derive_standing(_field(), 5), cfg)[0].kind == st.ALERT_DEREGISTRATION  # 0.2
    assert st.check_alerts(None, st.derive_standing(_field(), 5), settings) == []  # 0.2 >= default 0.1
    [missing] = st.check_alerts(before, st.derive_standing(_field(), 99), cfg)
    assert missing.kind == st.ALERT_MISSING and "99" in missing.message
    [stale] = st.check_alerts(before, st.stale_standing(before, 3, "taostats: HTTP 503"), cfg)
    assert stale.kind == st.ALERT_STALE and "HTTP 503" in stale.message
    assert st.check_alerts(before, None, cfg) == []
    assert st.check_alerts(None, st.derive_standing(_field(), None), cfg) == []  # no uid configured
    assert json.dumps([a.details for a in (drop, dereg, missing, stale)])  # JSON-able for the audit feed


# --- history and trend ---------------------------------------------------------------------------------------


def test_history_and_trend_over_good_snapshots(engine: Engine, settings: Settings) -> None:
    import datetime as dt

    class Fixed:
        name = "fixed"

        def __init__(self, rows: list[st.MinerRow]) -> None:
            self.rows = rows

        def fetch(self) -> st.Fetched:
            if not self.rows:
                raise st.StandingsError("fixed: down")
            return st.Fetched(tuple(self.rows), block=len(self.rows))

    t0 = dt.datetime(2025, 6, 1, 12, 0)
    polls = [_field(), [], _field()[:4], [r for r in _field() if r.uid != 3]]
    for i, rows in enumerate(polls):
        st.poll_standings(engine, settings, source=Fixed(rows), now=t0 + dt.timedelta(minutes=15 * i))
    with read_session(engine) as session:
        points = st.trend(session, 3, n=10)
        history = st.history_for(session, 3, limit=10)
    assert [p.taken_at.minute for p in points] == [0, 30, 45]  # the stale poll at :15 is not a point
    assert [(p.rank, p.miners, p.incentive) for p in points] == [(3, 6, 0.2), (3, 3, 0.2), (None, 5, None)]
    assert [h.taken_at.minute for h in history] == [30, 0] and history[0].row.hotkey == "5Ours"


# --- the job end to end --------------------------------------------------------------------------------------


def test_leaderboard_job_end_to_end(
    server: LocalServer, home: Path, clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert st.leaderboard_job() == {"skipped": "leaderboard.source is none"}
    caplog.set_level(logging.DEBUG)
    for name, value in {"SOURCE": "taostats", "URL": server.url, "RANK_DROP_ALERT": "1", "RETRIES": "0",
                        "CALLS_PER_MINUTE": "6000"}.items():
        clean_env.setenv(f"ROADWORK_LEADERBOARD__{name}", value)
    clean_env.setenv("ROADWORK_LEADERBOARD_API_KEY", KEY)
    clean_env.setenv("ROADWORK_UID", str(OURS))

    first = st.leaderboard_job()  # miners 3-7 by incentive .22 .18 .12 .08 0: we are 3rd
    assert (first["stale"], first["rank"], first["miners"], first["percentile"]) == (False, 3, 5, 0.5)
    assert first["rows"] == 8 and first["alerts"] == [] and first["block"] == BLOCK
    json.dumps(first)

    worse = json.loads(json.dumps(PAGE))
    worse["data"][OURS]["incentive"] = "0.07"  # below uid 6's 0.08: rank 4
    server.respond = lambda n, path, q: Reply(body=worse)
    second = st.leaderboard_job()
    assert second["rank"] == 4 and second["alerts"] == [st.ALERT_RANK_DROP]

    server.respond = lambda n, path, q: Reply(503, {"error": f"upstream down for {server.requests[-1].authorization}"})
    third = st.leaderboard_job()
    assert third["stale"] and third["alerts"] == [st.ALERT_STALE] and third["rank"] == 4  # the last good rank

    server.respond = lambda n, path, q: Reply(body=PAGE)
    clean_env.setenv("ROADWORK_UID", "99")
    fourth = st.leaderboard_job()
    assert fourth["alerts"] == [st.ALERT_MISSING] and fourth["rank"] is None

    assert all(seen.authorization == KEY for seen in server.requests)
    engine = get_engine(load_settings().db_url)
    with read_session(engine) as session:
        events = list(reversed(repo.list_audit(session)))
        latest_good = st.latest_snapshot(session)
    assert [(e.actor, e.action, e.target) for e in events] == [
        ("leaderboard", "alert", st.ALERT_RANK_DROP),
        ("leaderboard", "alert", st.ALERT_STALE),
        ("leaderboard", "alert", st.ALERT_MISSING),
    ]
    assert events[0].details["previous_rank"] == 3 and events[0].details["snapshot_id"] == second["snapshot_id"]
    assert "HTTP 503" in events[1].reason
    assert latest_good.id == fourth["snapshot_id"]
    stored = json.dumps([(e.reason, e.details) for e in events]) + third["error"]
    assert KEY not in stored and KEY not in caplog.text


# --- roadwork standings --------------------------------------------------------------------------------------


def test_standings_report_from_the_latest_snapshot_and_refresh(engine: Engine, settings: Settings) -> None:
    ours = settings.model_copy(update={"uid": OURS})
    with pytest.raises(st.StandingsError, match="no standings stored yet"):
        st.standings_report(engine, ours)
    with pytest.raises(st.StandingsError, match="leaderboard.source is none"):
        st.standings_report(engine, ours, refresh=True)

    good = _settings(ours, source="btcli", url=str(BTCLI))
    report = st.standings_report(engine, good, refresh=True)
    assert tuple(report) == st.REPORT_KEYS
    assert {k: report[k] for k in ("uid", "rank", "miners", "percentile", "incentive", "emission_alpha",
                                   "stake_alpha", "trust", "block", "source", "stale")} == {
        "uid": OURS, "rank": 3, "miners": 5, "percentile": 0.5, "incentive": 0.12, "emission_alpha": 8.86,
        "stake_alpha": 1.5, "trust": None, "block": None, "source": "btcli", "stale": False}
    assert report["taken_at"].endswith("Z") and json.dumps(report)

    wrapped = _settings(ours, source="btcli", url=str(BTCLI_WRAPPED))
    with pytest.raises(st.StandingsError) as raised:
        st.standings_report(engine, wrapped, refresh=True)
    assert "broken across" in str(raised.value) and "last good snapshot" in str(raised.value)
    assert "\n" not in str(raised.value)
    after = st.standings_report(engine, wrapped)  # without --refresh: the last good numbers, marked stale
    assert after == {**report, "stale": True}


def test_standings_command(home: Path, clean_env: pytest.MonkeyPatch) -> None:
    settings_file = home / "roadwork.yaml"
    settings_file.write_text(f"uid: {OURS}\nleaderboard:\n  source: btcli\n  url: {BTCLI}\n")
    clean_env.setenv("ROADWORK_SETTINGS", str(settings_file))
    runner = CliRunner()
    done = runner.invoke(app, ["standings", "--refresh", "--json"])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert (shown["rank"], shown["miners"], shown["emission_alpha"], shown["stale"]) == (3, 5, 8.86, False)

    settings_file.write_text(f"uid: {OURS}\nleaderboard:\n  source: btcli\n  url: {BTCLI_WRAPPED}\n")
    failed = runner.invoke(app, ["standings", "--refresh"])
    assert failed.exit_code == 2 and failed.stdout == ""
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("error: btcli: the JSON is broken across")
    table = runner.invoke(app, ["standings"])
    assert table.exit_code == 0 and "3 of 5" in table.stdout and "alpha" in table.stdout
    assert "stale" in table.stderr


def test_demo_sample_follows_btcli_and_is_marked_sample(tmp_path: Path, engine: Engine, settings: Settings) -> None:
    from roadwork.platform.demo import DEMO_UID, write_standings_sample

    path = write_standings_sample(tmp_path / "sample.json")
    data = json.loads(path.read_text())
    assert isinstance(data["uids"], list) and "emissions" in data["uids"][0] and "neurons" not in data
    result = st.poll_standings(engine, _settings(settings, source="btcli", url=str(path)))
    assert not result.stale and st.is_sample(result.source) and not st.is_sample("btcli")
    standing = st.derive_standing(result.rows, DEMO_UID)
    assert standing.found and standing.miners == 60  # 60 miners; the owner and 4 validators do not count
