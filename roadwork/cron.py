"""Standard 5-field crontab expressions (UTC): parsing, weekday numbering, and fire-time previews.

Pure and light on purpose: settings validation, the scheduler, the CLI and the dashboard all read crons, and
none of them should have to import the others to do it. APScheduler's `CronTrigger` computes the fire times,
so a preview shows exactly what the scheduler will do.
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # crontab numbering: 0 and 7 are Sunday


def crontab_day_of_week(field: str) -> str:
    """A crontab day-of-week field as an explicit list of day names.

    APScheduler 3 numbers days from Monday = 0, while crontab has Sunday = 0 (and 7); names mean the same in
    both, so `0 3 * * 1` fires on Mondays as anyone who writes crontabs expects. Numeric ranges and steps are
    expanded in crontab numbering (`0-6/3` is Sunday, Wednesday, Saturday); names pass through."""
    if field == "*":
        return field
    days: list[str] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        low, _, high = base.partition("-")
        if not (low.isdigit() or low == "*") or (high and not high.isdigit()):
            days.append(part)  # names (mon-fri) mean the same to APScheduler
            continue
        first, last = (0, 6) if low == "*" else (int(low), int(high) if high else int(low))
        if step:
            last = 6 if not high and low != "*" else last
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
            raise ValueError(f"day of week out of range: {part!r}")
        days.extend(DAY_NAMES[d] for d in range(first, last + 1, int(step) if step else 1))
    return ",".join(dict.fromkeys(days))


def cron_trigger(expr: str) -> CronTrigger:
    """A UTC trigger from a standard 5-field crontab expression; raises ValueError naming the bad expression."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=crontab_day_of_week(weekday), timezone=dt.UTC)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from exc


def validate_cron(expr: str) -> str:
    """The expression with its whitespace normalised, once it parses; ValueError naming it otherwise."""
    cron_trigger(expr)
    return " ".join(expr.split())


def next_fire_times(expr: str, n: int = 5, after: dt.datetime | None = None) -> list[dt.datetime]:
    """The next `n` fire times (aware UTC) of a cron expression, for previews."""
    trigger = cron_trigger(expr)
    previous = None
    now = after or dt.datetime.now(dt.UTC)
    out: list[dt.datetime] = []
    while len(out) < n:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        out.append(fire)
        previous, now = fire, fire + dt.timedelta(microseconds=1)
    return out
