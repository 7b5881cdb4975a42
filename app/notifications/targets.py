"""Where webhooks may go: the address policy from NOTIFY_ALLOWED_HOSTS, and the submit-time
check of a `notify_url` (the connect-time check is app/net/guard.py, with the same policy)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import httpcore

from app.auth.callers import Caller
from app.errors import AppError
from app.net.guard import AddressPolicy, resolve

RESOLVE_TIMEOUT_SECONDS = 5.0


class NotifyUrlRefused(AppError):
    status, code, title = 422, "notify_url_refused", "notify_url refused"


class WebhookSecretMissing(AppError):
    status, code, title = 422, "webhook_secret_missing", "No webhook secret"


@lru_cache(maxsize=8)
def target_policy(allowed_hosts: tuple[str, ...]) -> AddressPolicy:
    """Without a list: any address but loopback, link-local, unspecified, multicast and reserved
    ones (callers are internal services, so private networks are fine). With a list: only the
    hosts and networks it names, whatever their addresses."""
    return AddressPolicy.from_lists(
        allow=allowed_hosts, allow_internal=True, only_listed=bool(allowed_hosts)
    )


def check_caller(caller: Caller | None) -> Caller:
    """`caller` if it can sign webhooks; WebhookSecretMissing otherwise."""
    if caller is None or not caller.webhook_secrets:
        raise WebhookSecretMissing(
            "notify_url needs a webhook secret for this caller (webhook_secrets in CALLERS_FILE)",
            errors=[
                {
                    "field": "notify_url",
                    "message": "the caller has no webhook secret",
                    "type": WebhookSecretMissing.code,
                }
            ],
        )
    return caller


async def check_url(policy: AddressPolicy, url: str) -> None:
    """Refuse (NotifyUrlRefused) a URL that is not http(s), whose host cannot be resolved, or
    that resolves to an address the policy forbids. Redone at connect time: DNS may change."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise _refused("notify_url must be an http or https URL with a host")
    if policy.allows_host(host):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("notify_url has an invalid port") from None
    try:
        addresses = await resolve(host, port, RESOLVE_TIMEOUT_SECONDS)
    except (httpcore.ConnectError, httpcore.ConnectTimeout):
        raise _refused(f"notify_url host {host!r} cannot be resolved") from None
    for address in addresses:
        if not policy.allows(address):
            reason = (
                "is not in NOTIFY_ALLOWED_HOSTS"
                if policy.only_listed
                else "is loopback, link-local or otherwise not routable "
                "(list it in NOTIFY_ALLOWED_HOSTS to allow it)"
            )
            raise _refused(f"notify_url host {host!r} resolves to {address}, which {reason}")


def _refused(detail: str) -> NotifyUrlRefused:
    return NotifyUrlRefused(
        detail, errors=[{"field": "notify_url", "message": detail, "type": NotifyUrlRefused.code}]
    )
