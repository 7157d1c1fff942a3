"""Tests of `RATE_LIMIT` in a handler module: what it accepts, the start-up error for what it does not, and
the worker's `Throttle` counting starts over a sliding window (on a clock the test moves). That the
limit holds in the real app is tested end to end in `test_pause_rate_limit_bulk_replay.py`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lib import RateLimit
from lib.core.errors import ConfigurationError, HandlerModuleError
from lib.core.rate_limit import parse_rate_limit
from lib.core.registry import Endpoint, discover_handlers
from lib.worker.throttle import Throttle

HANDLER = '''\
"""A handler."""
from lib import RateLimit, WebhookPayload

RATE_LIMIT = {value}


def handle(payload: WebhookPayload):
    return None
'''


@pytest.mark.parametrize(
    "value, runs, seconds",
    [
        ("30/minute", 30, 60),
        ("30 per minute", 30, 60),
        (" 5/s ", 5, 1),
        ("5/second", 5, 1),
        ("2/seconds", 2, 1),
        ("100/hour", 100, 3600),
        ("1000/day", 1000, 86400),
        ("10/5 minutes", 10, 300),
        ("3/MIN", 3, 60),
        (RateLimit(30, per="minute"), 30, 60),
        (RateLimit(4, per=2.5), 4, 2.5),
    ],
)
def test_the_forms_a_rate_limit_reads_naturally_in(value: object, runs: int, seconds: float) -> None:
    limit = parse_rate_limit(value, where="handlers/x.py")
    assert (limit.runs, limit.seconds) == (runs, seconds)


@pytest.mark.parametrize("value", ["30", "30/fortnight", "0/minute", "-1/minute", "2/ms", "fast", "", 30, 0.5, True])
def test_a_value_that_is_not_a_rate_is_refused_with_the_forms_it_takes(value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_rate_limit(value, where="handlers/x.py")
    message = str(caught.value)
    assert message.startswith("handlers/x.py: RATE_LIMIT = ") and '"30/minute"' in message


@pytest.mark.parametrize("runs, per", [(0, "minute"), (1.5, "minute"), (True, "minute"), (3, "week"), (3, 0), (3, -1)])
def test_a_rate_limit_object_checks_itself(runs: object, per: object) -> None:
    with pytest.raises(ConfigurationError, match="RateLimit"):
        RateLimit(runs, per=per)  # type: ignore[arg-type]


def test_a_handler_module_declares_its_rate_limit(tmp_path: Path) -> None:
    folder = tmp_path / "handlers"
    folder.mkdir()
    (folder / "slow.py").write_text(HANDLER.format(value='"30/minute"'))
    (folder / "typed.py").write_text(HANDLER.format(value='RateLimit(2, per="second")'))
    (folder / "free.py").write_text(HANDLER.format(value="None"))
    limits = {e.name: e.rate_limit for e in discover_handlers(folder, package="handlers_rate_ok")}
    assert limits == {"free": None, "slow": RateLimit(30, per=60.0), "typed": RateLimit(2, per="second")}
    assert str(limits["slow"]) == "30/minute"


def test_a_bad_rate_limit_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "handlers"
    folder.mkdir()
    (folder / "slow.py").write_text(textwrap.dedent(HANDLER.format(value='"30 a minute"')))
    with pytest.raises(HandlerModuleError) as caught:
        discover_handlers(folder, package="handlers_rate_bad")
    assert str(folder / "slow.py") in str(caught.value) and "'30 a minute' is not a rate" in str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **limits: RateLimit | None) -> Throttle:
    endpoints = {
        f"/webhooks/{name}": Endpoint.create(f"/webhooks/{name}", lambda: None, rate_limit=limit)
        for name, limit in limits.items()
    }
    return Throttle(10, endpoints, clock=clock)


def test_the_throttle_allows_the_limit_per_sliding_window_and_says_when_there_is_room_again() -> None:
    clock = Clock()
    gate = throttle(clock, slow=RateLimit(3, per="second"), free=None)
    for _ in range(3):
        assert gate.has_room("/webhooks/slow")
        gate.started("/webhooks/slow", clock.now)
        clock.now += 0.1
    assert not gate.has_room("/webhooks/slow")  # 3 starts within the last second
    assert gate.room(["/webhooks/slow", "/webhooks/free"]) == {"/webhooks/slow": 0, "/webhooks/free": 10}
    assert gate.next_room_at() == pytest.approx(1001.0)  # the first start leaves the window
    clock.now = 1000.99
    assert not gate.has_room("/webhooks/slow")
    clock.now = 1001.0
    assert gate.room(["/webhooks/slow"]) == {"/webhooks/slow": 1}
    assert gate.next_room_at() is None  # nothing throttled now: no wake-up needed
    for _ in range(20):  # an endpoint without a limit is never throttled
        gate.started("/webhooks/free", clock.now)
        gate.enter("/webhooks/free")
    assert gate.room(["/webhooks/free"]) == {"/webhooks/free": 0}  # only its share (10) limits it


def test_a_start_counts_from_its_claim_time_when_that_is_later() -> None:
    clock = Clock()
    gate = throttle(clock, slow=RateLimit(1, per=10))
    gate.started("/webhooks/slow", clock.now)  # its place taken at 1000, before its claim
    gate.claimed("/webhooks/slow", 1002.5)  # the journal claimed it at 1002.5
    clock.now = 1011.0
    assert not gate.has_room("/webhooks/slow")  # 1011 - 1002.5 < 10: the journal would show two starts too close
    assert gate.next_room_at() == pytest.approx(1012.5)
    clock.now = 1012.5
    assert gate.has_room("/webhooks/slow")
