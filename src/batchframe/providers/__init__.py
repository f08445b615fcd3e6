"""Batch API providers behind one small interface (see base.Provider)."""

from __future__ import annotations

import re
from typing import Any, cast

from ..errors import ConfigurationError
from .anthropic import AnthropicProvider
from .base import Limits, Provider, RemoteStatus, map_sdk_errors
from .openai import OpenAIProvider

PROVIDERS = {"openai": OpenAIProvider, "anthropic": AnthropicProvider}

_OPENAI_MODELS = re.compile(
    r"^(gpt-|o[1-9]|chatgpt-|text-embedding-|davinci|babbage|ft:gpt-|omni-)", re.IGNORECASE
)
_ANTHROPIC_MODELS = re.compile(r"^claude-", re.IGNORECASE)


def infer_provider(model: str, provider: str | None = None) -> str:
    """Which provider serves ``model``: ``provider=`` wins, else the model's family."""
    if provider is not None:
        if provider not in PROVIDERS:
            raise ConfigurationError(
                f"provider={provider!r} is not supported; choose one of {sorted(PROVIDERS)}."
            )
        return provider
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError("model= is required, for example model='gpt-4o-mini'.")
    if _ANTHROPIC_MODELS.match(model):
        return "anthropic"
    if _OPENAI_MODELS.match(model):
        return "openai"
    raise ConfigurationError(
        f"Cannot tell which provider serves model {model!r}. Pass provider='openai' or "
        "provider='anthropic' (claude-* models are Anthropic; gpt-*, o1/o3/o4-* are OpenAI)."
    )


def client_provider(client: Any) -> str | None:
    """The provider a user-supplied SDK client belongs to, if recognisable."""
    module = type(client).__module__.split(".")[0]
    return module if module in PROVIDERS else None


def make_provider(name: str, client: Any | None = None) -> Provider:
    if client is not None:
        owner = client_provider(client)
        if owner is not None and owner != name:
            raise ConfigurationError(
                f"client= is an {owner} client but the model is served by {name}; pass a "
                f"{name} client or provider={owner!r}."
            )
    return cast(Provider, PROVIDERS[name](client))


__all__ = [
    "PROVIDERS",
    "AnthropicProvider",
    "Limits",
    "OpenAIProvider",
    "Provider",
    "RemoteStatus",
    "infer_provider",
    "make_provider",
    "map_sdk_errors",
]
