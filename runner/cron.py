"""Cron expressions in a time zone: validation and fire times. The only ``apscheduler`` user in ``runner``.

APScheduler's ``CronTrigger`` matches the fields, but only on a clock without daylight-saving changes
(UTC): with a real zone, version 3 repeats or loops over the hour that occurs twice in autumn. So the
trigger runs on *wall-clock* time (local time written as if it were UTC) and this module maps each
matching wall-clock time to real instants, with the rule Vixie cron uses:

* a schedule whose hour field starts with ``*`` follows elapsed time: it fires at every real instant whose
  local time matches, so both passes of a repeated hour, and nothing in the skipped hour;
* a schedule at fixed hours fires once per wall-clock time: at the first pass of a repeated time, and
  at the end of the gap (the moment the clocks jump) for a time that is skipped in spring.

Cron's own field rules are kept where APScheduler differs: day-of-week 0 and 7 are Sunday (APScheduler
counts from Monday), and when both day-of-month and day-of-week are restricted a day matching either
fires (APScheduler requires both).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.cron import CronTrigger

from runner.hints import close_names, quoted

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_ITEM = re.compile(r"(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?")
# Looking this far around a wall-clock time covers every offset change in the tz database (at most 2 h).
_SHIFT = timedelta(hours=3)
_SEARCH_LIMIT = 10_000
# A leap year start, so that a schedule on 29 February counts as one that fires.
_EPOCH = datetime(2000, 1, 1)


class CronError(ValueError):
    """An expression or time zone that cannot be used; the message names the problem and the fix."""


def _weekday_number(token: str) -> int:
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    raise CronError(f"{quoted(token)} is not a weekday (0-7 or sun..sat, 0 and 7 are Sunday)")


def _cron_weekdays(field: str) -> str:
    """A cron day-of-week field as APScheduler weekday names (cron counts from Sunday)."""
    days: set[int] = set()
    for item in field.lower().split(","):
        match = _DOW_ITEM.fullmatch(item)
        if match is None:
            raise CronError(f"{quoted(item)} is not a weekday, a range or a step")
        text, step = match["range"], int(match["step"] or 1)
        if step < 1:
            raise CronError(f"{quoted(item)}: a step must be at least 1")
        if text == "*":
            first, last = 0, 6
        elif "-" in text:
            first, last = (_weekday_number(part) for part in text.split("-"))
            last = 7 if last == 0 and text.endswith("7") else last
            if first > last:
                raise CronError(f"{quoted(item)}: the range runs backwards")
        else:
            first = _weekday_number(text)
            last = first if match["step"] is None else 6
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def _triggers(expression: str) -> list[CronTrigger]:
    text = MACROS.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"must have 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}: "
            f'{quoted(expression)}; e.g. "0 3 * * *" for 03:00 every day'
        )
    minute, hour, day, month, weekday = fields
    problems = []
    for name, value in zip(FIELD_NAMES[:4], fields[:4], strict=True):
        try:
            CronTrigger(**{_ARGUMENTS[name]: value}, timezone=UTC)
        except ValueError as error:
            problems.append(f"{name} field {quoted(value)}: {_reason(error)}")
    weekdays = ""
    try:
        weekdays = _cron_weekdays(weekday)
    except CronError as error:
        problems.append(f"day-of-week field: {error}")
    if problems:
        raise CronError("; ".join(problems))
    # Cron fires on a day matching either field when both are restricted; APScheduler on both.
    combos = [(day, weekdays)]
    if not day.startswith("*") and not weekday.startswith("*"):
        combos = [(day, "*"), ("*", weekdays)]
    triggers = []
    for day_field, weekday_field in combos:
        triggers.append(
            CronTrigger(
                minute=minute,
                hour=hour,
                day=day_field,
                month=month,
                day_of_week=weekday_field,
                timezone=UTC,
            )
        )
    return triggers


_ARGUMENTS = {"minute": "minute", "hour": "hour", "day-of-month": "day", "month": "month"}


def _reason(error: ValueError) -> str:
    text = str(error)
    if text.startswith("Unrecognized expression"):
        return "not a number, a range (1-5), a list (1,15), a step (*/10) or *"
    return text.split(": ", 1)[1] if text.startswith("Error validating expression") else text


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; CronError (with a "did you mean") when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    known = available_timezones()
    by_lower = {key.lower(): key for key in known}
    if name.lower() in by_lower:
        hint = f"; did you mean {quoted(by_lower[name.lower()])}?"
    else:
        hint = close_names(name, known)
    raise CronError(
        f"unknown time zone {quoted(name)}{hint or '; use an IANA name such as Europe/London or UTC'}"
    )


@dataclass(frozen=True)
class CronRule:
    """A cron expression in a time zone; :meth:`next_fire` gives real instants (aware, UTC)."""

    expression: str
    timezone: str
    _zone: ZoneInfo
    _triggers: tuple[CronTrigger, ...]
    follows_elapsed_time: bool

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first matching wall-clock time at or after `wall` (naive)."""
        start = wall.replace(tzinfo=UTC)
        found = [trigger.get_next_fire_time(None, start) for trigger in self._triggers]
        times = [time for time in found if time is not None]
        return min(times).replace(tzinfo=None) if times else None

    def _instants(self, wall: datetime) -> list[datetime]:
        """The real instants (UTC) at which the wall-clock time `wall` fires, per the DST rule."""
        first = wall.replace(tzinfo=self._zone, fold=0)
        second = wall.replace(tzinfo=self._zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        exists = first.astimezone(UTC).astimezone(self._zone).replace(tzinfo=None) == wall
        if exists:  # the time occurs twice (autumn)
            both = [first.astimezone(UTC), second.astimezone(UTC)]
            return sorted(both) if self.follows_elapsed_time else [min(both)]
        if self.follows_elapsed_time:  # skipped (spring) and the schedule follows elapsed time
            return []
        return [self._gap_end(second.astimezone(UTC), first.astimezone(UTC))]

    def _gap_end(self, low: datetime, high: datetime) -> datetime:
        """The instant in (low, high] at which the zone's offset changes (the clocks jump)."""
        offset = low.astimezone(self._zone).utcoffset()
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self._zone).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return high.replace(microsecond=0)

    def _margin(self, instant: datetime) -> timedelta:
        """How far wall-clock times may be out of step with instants near `instant`: zero unless the
        zone's offset changes within a few hours of it."""
        offsets = {(instant + delta).astimezone(self._zone).utcoffset() for delta in (-_SHIFT, _SHIFT)}
        steady = offsets == {instant.astimezone(self._zone).utcoffset()}
        return timedelta(0) if steady else _SHIFT

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after `after` (aware), in UTC; None if there is none."""
        return _next_fire(self, after.astimezone(UTC))

    def _search(self, after: datetime) -> datetime | None:
        wall = after.astimezone(self._zone).replace(tzinfo=None) - self._margin(after)
        best: datetime | None = None
        for _ in range(_SEARCH_LIMIT):
            found = self._next_wall(wall)
            if found is None:
                return best
            for instant in self._instants(found):
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None:
                # Later wall-clock times fire later, except near an offset change (see _margin).
                best_wall = best.astimezone(self._zone).replace(tzinfo=None)
                if found >= best_wall + self._margin(best):
                    return best
            wall = found + timedelta(minutes=1)
        return best

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire instants after `after`."""
        times: list[datetime] = []
        current = after
        while len(times) < count:
            following = self.next_fire(current)
            if following is None:
                break
            times.append(following)
            current = following
        return times

    def local(self, instant: datetime) -> datetime:
        """`instant` in the rule's time zone."""
        return instant.astimezone(self._zone)


@functools.lru_cache(maxsize=4096)
def _next_fire(rule: CronRule, after: datetime) -> datetime | None:
    # Schedules that share an expression (many fire at "0 * * * *") ask for the same fire times.
    return rule._search(after)


def cron_rule(expression: str, timezone: str = "UTC") -> CronRule:
    """The rule for a 5-field cron `expression` (or a macro such as ``@daily``) in `timezone`.

    Raises :class:`CronError` with a message for the user."""
    triggers = _triggers(expression)
    zone_info = zone(timezone)
    hour = MACROS.get(expression.strip().lower(), expression).split()[1]
    rule = CronRule(expression, timezone, zone_info, tuple(triggers), hour.startswith("*"))
    if rule._next_wall(_EPOCH) is None:
        raise CronError(
            f"{quoted(expression)} never fires: no date has that day of the month in those months"
        )
    return rule
