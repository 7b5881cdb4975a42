"""Dev mode's one-time sign-in link (`make dev` prints it): no such link exists otherwise.

The link is enabled only by `app.devmode` on the app it builds; `serve` never enables it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from fastapi import FastAPI

PATH = "/console/dev-login"


@dataclass
class DevLogin:
    """A single-use token that signs in as `caller`."""

    caller: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    used: bool = False

    def redeem(self, presented: str) -> bool:
        """True once, for the right token; every later call is False."""
        if self.used or not hmac.compare_digest(self.token.encode(), presented.encode()):
            return False
        self.used = True  # no await between the check and this: one request wins
        return True


def enable(app: FastAPI, caller: str, base_url: str) -> str:
    """Turn on the one-time link for `caller` on this app; the URL to print."""
    login = DevLogin(caller)
    app.state.console_dev_login = login
    return f"{base_url}{PATH}?token={login.token}"


def for_app(app: FastAPI) -> DevLogin | None:
    """The app's one-time link, if dev mode turned it on."""
    login: DevLogin | None = getattr(app.state, "console_dev_login", None)
    return login
