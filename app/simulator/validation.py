"""gpt-4o-image's request rules, in one place so other models can be added beside them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.simulator.errors import invalid_request
from app.simulator.fault_syntax import strip_directives

MODEL = "gpt-4o-image"
SIZES = frozenset({"1:1", "2:3", "3:2", "1024x1024", "1024x1536", "1536x1024"})
COUNTS = frozenset({1, 2, 4})
MAX_PROMPT = 2000
MAX_IMAGES = 5
MAX_CALLBACK_URL = 2048


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A create request that passed validation."""

    prompt: str
    size: str | None
    n: int
    image_urls: list[str]
    mask_url: str | None
    callback_url: str | None


def validate_create(body: Any, strict_callbacks: bool) -> CreateRequest:
    """Check a create body as EvoLink does; raises SimError (400) naming the bad field."""
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise invalid_request("model is required.", "model")
    if model != MODEL:
        raise invalid_request(f"Unsupported model: {model!r}. Use {MODEL!r}.", "model")
    prompt = _prompt(body.get("prompt"))
    size = body.get("size")
    if size is not None and size not in SIZES:
        raise invalid_request(f"size must be one of {', '.join(sorted(SIZES))}.", "size")
    n = body.get("n", 1)
    # bool is an int in Python, but not in JSON.
    if isinstance(n, bool) or not isinstance(n, int) or n not in COUNTS:
        raise invalid_request("n must be 1, 2 or 4.", "n")
    image_urls = _image_urls(body.get("image_urls"))
    mask_url = body.get("mask_url")
    if mask_url is not None:
        if not _is_http_url(mask_url):
            raise invalid_request("mask_url must be an http(s) URL.", "mask_url")
        if len(image_urls) != 1:
            raise invalid_request("mask_url requires exactly one image in image_urls.", "mask_url")
    callback_url = body.get("callback_url")
    if callback_url is not None:
        _check_callback_url(callback_url, strict_callbacks)
    return CreateRequest(prompt, size, n, image_urls, mask_url, callback_url)


def _prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("prompt is required.", "prompt")
    # Simulator directives are not the user's text: they must not push a prompt over the limit.
    if len(strip_directives(prompt)) > MAX_PROMPT:
        raise invalid_request(f"prompt must be at most {MAX_PROMPT} characters.", "prompt")
    return prompt


def _image_urls(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request("image_urls must be an array of URLs.", "image_urls")
    if len(value) > MAX_IMAGES:
        raise invalid_request(f"image_urls accepts at most {MAX_IMAGES} images.", "image_urls")
    if not all(_is_http_url(url) for url in value):
        raise invalid_request("image_urls must contain http(s) URLs.", "image_urls")
    return list(value)


def _check_callback_url(url: Any, strict: bool) -> None:
    if not _is_http_url(url):
        raise invalid_request("callback_url must be an http(s) URL.", "callback_url")
    if len(url) > MAX_CALLBACK_URL:
        message = f"callback_url must be at most {MAX_CALLBACK_URL} characters."
        raise invalid_request(message, "callback_url")
    if not strict:
        return
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise invalid_request("callback_url must use HTTPS.", "callback_url")
    if _is_internal(parts.hostname or ""):
        raise invalid_request("callback_url must not point to an internal address.", "callback_url")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_internal(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified
    )
