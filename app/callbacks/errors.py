"""Problems the callback route answers with."""

from __future__ import annotations

from app.errors import AppError


class CallbackTooLarge(AppError):
    status, code, title = 413, "callback_too_large", "Callback body too large"


class CallbackMalformed(AppError):
    status, code, title = 400, "callback_malformed", "Callback body is not a task"


class CallbackIncomplete(AppError):
    status, code, title = 400, "callback_incomplete", "Callback body incomplete"
