"""FastAPI dependencies for what the lifespan puts on app.state.

They are `async def` although they never await: FastAPI runs a plain `def` dependency in a
worker thread, which cost about 9% of a lookup's time (py-spy, under wrk load)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.callbacks.tokens import CallbackSigner
from app.config import Settings
from app.jobs.submission import Submitter


async def get_app_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_submitter(request: Request) -> Submitter:
    """The process's submitter of jobs to EvoLink."""
    submitter: Submitter = request.app.state.submitter
    return submitter


def wake_worker(request: Request) -> None:
    """Tell this process's background worker, if it runs one, that work is due now."""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.wake()


async def get_signer(request: Request) -> CallbackSigner:
    """The signer of callback URLs."""
    signer: CallbackSigner = request.app.state.signer
    return signer


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SignerDep = Annotated[CallbackSigner, Depends(get_signer)]
SubmitterDep = Annotated[Submitter, Depends(get_submitter)]
