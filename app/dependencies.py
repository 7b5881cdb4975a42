"""FastAPI dependencies for what the lifespan puts on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.callbacks.tokens import CallbackSigner
from app.config import Settings
from app.evolink.client import EvolinkClient


def get_app_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_evolink(request: Request) -> EvolinkClient:
    """The shared EvoLink client."""
    client: EvolinkClient = request.app.state.evolink
    return client


def get_signer(request: Request) -> CallbackSigner:
    """The signer of callback URLs."""
    signer: CallbackSigner = request.app.state.signer
    return signer


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EvolinkDep = Annotated[EvolinkClient, Depends(get_evolink)]
SignerDep = Annotated[CallbackSigner, Depends(get_signer)]
