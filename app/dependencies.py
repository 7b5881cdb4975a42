"""FastAPI dependencies for what the lifespan puts on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.callbacks.tokens import CallbackSigner
from app.config import Settings
from app.jobs.submission import Submitter


def get_app_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_submitter(request: Request) -> Submitter:
    """The process's submitter of jobs to EvoLink."""
    submitter: Submitter = request.app.state.submitter
    return submitter


def wake_worker(request: Request) -> None:
    """Tell this process's background worker, if it runs one, that work is due now."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


def get_signer(request: Request) -> CallbackSigner:
    """The signer of callback URLs."""
    signer: CallbackSigner = request.app.state.signer
    return signer


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SignerDep = Annotated[CallbackSigner, Depends(get_signer)]
SubmitterDep = Annotated[Submitter, Depends(get_submitter)]
