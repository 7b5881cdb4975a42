"""The console's expected failures (rendered as HTML pages by app/web/routing.py)."""

from __future__ import annotations

from app.errors import AppError


class SignInRequired(AppError):
    status, code, title = 401, "console_sign_in_required", "Sign in required"


class CsrfRefused(AppError):
    status, code, title = 403, "console_csrf_refused", "Form refused"


class SignInRefused(AppError):
    status, code, title = 401, "console_sign_in_refused", "Sign-in refused"


class InvalidFilter(AppError):
    status, code, title = 400, "console_invalid_filter", "Invalid filter"


class DevLoginUnavailable(AppError):
    status, code, title = 404, "console_dev_login_unavailable", "Link not valid"
