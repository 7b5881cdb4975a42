"""The target policy (NOTIFY_ALLOWED_HOSTS) address by address, and the webhook settings, each
mistake refused with one line that names it."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.db import create_engine, create_session_factory, utcnow
from app.notifications.service import AttemptResult, next_step
from app.notifications.targets import target_policy
from app.notifications.worker import build_notification_worker


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.8.8", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::",  # noqa: S104
     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "ff02::1", "240.0.0.1"],
)  # fmt: skip
def test_by_default_loopback_link_local_and_the_like_are_refused(address: str) -> None:
    assert not target_policy(()).allows(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1", "93.184.215.14", "2606::1"]
)
def test_by_default_private_networks_and_the_internet_are_allowed(address: str) -> None:
    assert target_policy(()).allows(ipaddress.ip_address(address))


def test_a_list_allows_only_what_it_names() -> None:
    policy = target_policy(("localhost", "*.corp.example", "10.0.0.0/8", "169.254.169.254"))
    assert policy.allows_host("localhost") and policy.allows_host("LOCALHOST.")
    assert policy.allows_host("hooks.corp.example") and policy.allows_host("a.b.corp.example")
    assert not policy.allows_host("corp.example") and not policy.allows_host("evilcorp.example")
    assert policy.allows(ipaddress.ip_address("10.9.9.9"))
    assert policy.allows(ipaddress.ip_address("169.254.169.254"))
    for other in ("127.0.0.1", "192.168.1.1", "93.184.215.14"):
        assert not policy.allows(ipaddress.ip_address(other))


def test_the_schedule_decides_what_follows_an_attempt() -> None:
    now = utcnow()
    schedule = (5.0, 300.0)
    ok, gone = AttemptResult(204, 0.1), AttemptResult(410, 0.1)
    busy, refused = AttemptResult(503, 0.1), AttemptResult(None, 0.0, "x", refused=True)
    assert next_step(1, ok, schedule, now)["status"] == "delivered"
    assert next_step(1, gone, schedule, now)["status"] == "failed"
    assert next_step(1, refused, schedule, now)["status"] == "failed"
    assert (next_step(1, busy, schedule, now)["next_attempt_at"] - now).total_seconds() == 5
    assert (next_step(2, busy, schedule, now)["next_attempt_at"] - now).total_seconds() == 300
    assert "status" not in next_step(2, busy, schedule, now)
    assert next_step(3, busy, schedule, now)["status"] == "failed"
    assert next_step(3, AttemptResult(302, 0.1), schedule, now)["status"] == "failed"


def test_webhook_settings_are_parsed() -> None:
    settings = Settings(
        _env_file=None,
        notify_allowed_hosts=" localhost, *.corp.example ,10.0.0.0/8,,fd00::/8",
        notify_retry_schedule="1, 2.5,60",
    )
    assert settings.notify_allowed_hosts == (
        "localhost",
        "*.corp.example",
        "10.0.0.0/8",
        "fd00::/8",
    )
    assert settings.notify_retry_schedule == (1.0, 2.5, 60.0)
    defaults = Settings(_env_file=None)
    assert defaults.notify_allowed_hosts == ()
    assert defaults.notify_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert defaults.notify_timeout_seconds == 10


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"notify_allowed_hosts": "good.example,bad host"}, "'bad host' is neither a host name"),
        ({"notify_allowed_hosts": "http://x.example"}, "'http://x.example' is neither"),
        ({"notify_allowed_hosts": "10.0.0.0/33"}, "'10.0.0.0/33' is neither"),
        ({"notify_allowed_hosts": "a..example"}, "'a..example' is neither"),
        ({"notify_allowed_hosts": "ho*ks.example"}, "'ho*ks.example' is neither"),
        ({"notify_retry_schedule": "5,soon"}, "'soon' is not a number of seconds"),
        ({"notify_retry_schedule": "5,-1"}, "'-1' must be 0 or more seconds"),
        ({"notify_retry_schedule": "5,inf"}, "'inf' must be 0 or more seconds"),
        ({"notify_timeout_seconds": 0}, "notify_timeout_seconds"),
    ],
)
def test_webhook_settings_mistakes_are_named(values: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert len(caught.value.errors()) == 1


def test_a_deliverys_claim_outlives_its_timeout() -> None:
    sessions = create_session_factory(create_engine("sqlite+aiosqlite://"))
    short_lease = Settings(
        _env_file=None, archive_url="off", claim_lease_seconds=5, notify_timeout_seconds=10
    )
    assert build_notification_worker(short_lease, sessions).deliverer.lease_seconds == 15
    long_lease = Settings(_env_file=None, claim_lease_seconds=60, notify_timeout_seconds=10)
    assert build_notification_worker(long_lease, sessions).deliverer.lease_seconds == 60
