"""Per-model request rules: the one place that knows what each EvoLink model accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """What EvoLink accepts for one model (see shared/evolink/API.md)."""

    name: str
    sizes: tuple[str, ...]
    n_values: tuple[int, ...]
    max_prompt_chars: int
    max_image_urls: int
    default_n: int


GPT_4O_IMAGE = ModelSpec(
    name="gpt-4o-image",
    sizes=("1:1", "2:3", "3:2", "1024x1024", "1024x1536", "1536x1024"),
    n_values=(1, 2, 4),
    max_prompt_chars=2000,
    max_image_urls=5,
    default_n=1,
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (GPT_4O_IMAGE,)}
DEFAULT_MODEL = GPT_4O_IMAGE.name
MAX_URL_CHARS = 2048
