"""Standings from btcli as release 9.23 prints them.

- The command: `btcli subnets show --netuid N --mechid 0 --json-output --no-prompt` (`--json-output` without
  `--no-prompt` exits 2; without `--mechid` a subnet with several mechanisms prompts). It is run without a
  shell, with `COLUMNS` set very large: btcli prints its one line of JSON through a console that wraps at the
  terminal width (80 columns when piped), which breaks the JSON.
- The JSON: subnet fields at the top (`netuid`, `owner`, `rate` in TAO per alpha, ...) and the rows under
  `uids`, owner first then by stake. Each row has `uid`, `hotkey`, `coldkey`, `stake` (alpha), `dividends`,
  `incentive`, `emissions` (alpha per epoch), `identity` (may hold rich markup, stripped here) and more, kept in
  `extra`. There is no rank, trust, validator permit or block number.
- Roles: the row whose hotkey or coldkey is the top-level `owner` is the owner's (`MinerRow.owner`); a row
  with dividends is a validator (`analysis.is_miner`).
- Output that is not one JSON document (wrapped at the terminal width, an error text) is refused with a
  message that says why and what to do; text printed before the document (warnings) is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from roadwork.platform.standings.parsing import (
    Fetched,
    StandingsError,
    block_of,
    find_rows,
    rows_from_dicts,
    to_bool,
    to_int,
)

MIN_TIMEOUT_S = 120.0  # btcli connects to a chain node first; the per-request timeout is far too short
WIDE_COLUMNS = "1000000"  # the child's terminal width: wide enough that one line of JSON is never wrapped
PIPE_WIDTH = 80  # the width a console assumes when its output is piped
SAMPLE_KEY = "roadwork_sample"  # a top-level key only the demo's sample file has; btcli never prints it
MARKUP = re.compile(r"\[(/?)([a-z0-9_ #.,=-]*)\]", re.IGNORECASE)


def default_command(netuid: int) -> list[str]:
    """The btcli command that prints the metagraph of `netuid` as one line of JSON, without prompting."""
    return ["btcli", "subnets", "show", "--netuid", str(netuid), "--mechid", "0", "--json-output", "--no-prompt"]


def strip_markup(text: str) -> str:
    """`text` without rich console markup: closing tags (`[/style]`, `[/]`) and the opening tags they close.
    Brackets that close nothing (`[SN72] miner`) stay."""
    closed = {m.group(2).lower() for m in MARKUP.finditer(text) if m.group(1)}

    def drop(match: re.Match[str]) -> str:
        name = match.group(2).lower()
        return "" if match.group(1) or name in closed or "" in closed else match.group(0)

    return MARKUP.sub(drop, text).strip()


def decode(text: str) -> Any:
    """The JSON document btcli printed; lines before it (warnings, progress) are skipped.

    Raises `StandingsError` saying why when there is none: wrapped at the terminal width, or not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first = exc
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith(("{", "["))][:50]
    for i in starts:
        try:
            return json.loads("\n".join(lines[i:]))
        except json.JSONDecodeError:
            continue
    body = [line for line in lines[starts[0]:] if line.strip()] if starts else []
    if len(body) > 1:  # btcli prints one line: several are its line wrapped at the terminal width
        raise StandingsError(
            f"btcli: the JSON is broken across {len(body)} lines of at most {max(map(len, body))} columns: btcli "
            f"wraps its one line at the terminal width ({PIPE_WIDTH} columns when piped). Run it with COLUMNS set "
            f"very large (COLUMNS={WIDE_COLUMNS} btcli ...); roadwork does so for the command it runs itself"
        )
    if not starts:
        shown = " ".join(text.split())[:200] or "(nothing)"
        raise StandingsError(f"btcli: output is not JSON: {shown}")
    raise StandingsError(
        f"btcli: output is not valid JSON ({first.msg} at line {first.lineno} column {first.colno}); run the "
        "command by hand to see what it prints"
    )


def parse(data: Any, netuid: int | None = None) -> Fetched:
    """Rows of btcli's JSON (amounts in alpha, as btcli prints them), owner marked, identity markup stripped."""
    items, meta = find_rows(data, "btcli")
    found_netuid = to_int(meta.get("netuid"))
    if netuid is not None and found_netuid is not None and found_netuid != netuid:
        raise StandingsError(f"btcli: the JSON is for netuid {found_netuid}, expected {netuid}")
    if not items:
        raise StandingsError("btcli: the JSON has no rows")
    rows, skipped = rows_from_dicts(items, netuid=netuid, consumed=("netuid",))
    if not rows:
        raise StandingsError(f"btcli: none of the {len(items)} rows has a usable uid")
    owner = meta.get("owner") if isinstance(meta.get("owner"), str) else None
    rows = [_with_roles(row, owner) for row in rows]
    sample = isinstance(data, Mapping) and to_bool(data.get(SAMPLE_KEY)) is True
    return Fetched(tuple(rows), block_of(meta, items), skipped, sample=sample)


def _with_roles(row: Any, owner: str | None) -> Any:
    changes: dict[str, Any] = {}
    if owner is not None and row.owner is None:
        changes["owner"] = owner in (row.hotkey, row.coldkey)
    if isinstance(row.extra.get("identity"), str):
        changes["extra"] = {**row.extra, "identity": strip_markup(row.extra["identity"])}
    return dataclasses.replace(row, **changes) if changes else row


class BtcliSource:
    """btcli's metagraph JSON, read from `path` or printed by `command` (a string split like a shell would, or
    a list; run without a shell, with `COLUMNS` set very large)."""

    name = "btcli"

    def __init__(
        self,
        path: str | Path | None = None,
        command: str | Sequence[str] | None = None,
        *,
        timeout_s: float = MIN_TIMEOUT_S,
        netuid: int | None = None,
    ):
        if (path is None) == (command is None):
            raise StandingsError("btcli: give either a JSON file (leaderboard.url) or a command (leaderboard.command)")
        self.path = Path(path).expanduser() if path is not None else None
        self.command = shlex.split(command) if isinstance(command, str) else list(command or [])
        self.timeout_s = timeout_s
        self.netuid = netuid

    def fetch(self) -> Fetched:
        return parse(decode(self._read()), self.netuid)

    def _read(self) -> str:
        if self.path is not None:
            try:
                return self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StandingsError(f"btcli: cannot read {self.path}: {exc}") from None
        program = self.command[0] if self.command else "(empty command)"
        env = {**os.environ, "COLUMNS": WIDE_COLUMNS}
        try:
            done = subprocess.run(self.command, capture_output=True, text=True, timeout=self.timeout_s, check=False,
                                  env=env)
        except FileNotFoundError:
            raise StandingsError(f"btcli: command not found: {program}") from None
        except subprocess.TimeoutExpired:
            raise StandingsError(f"btcli: {program} timed out after {self.timeout_s:g} s") from None
        except (OSError, IndexError) as exc:
            raise StandingsError(f"btcli: cannot run {program}: {exc}") from None
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout or "").split())[-300:]
            hint = ""
            if "--prompt" in tail or "--no-prompt" in tail:
                hint = " (btcli needs --no-prompt with --json-output, and --mechid 0: leave leaderboard.command " \
                       "empty to run the right command for leaderboard.netuid)"
            raise StandingsError(f"btcli: {program} exited with status {done.returncode}: {tail}{hint}")
        return done.stdout
