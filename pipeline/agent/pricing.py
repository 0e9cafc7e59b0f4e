"""What an LLM call costs: a price table per model, in USD per 1M tokens.

The built-in table holds list prices of common OpenAI models when this was written; check your
provider's current prices and override them with ``RAVEL_PRICES``, a JSON object mapping a
model (or a model prefix, or ``"*"`` for any other model) to
``{"input": 0.15, "output": 0.60, "cached_input": 0.075}`` or ``[input, output]``. A dated
model name (``gpt-4o-mini-2024-07-18``) is priced by its longest matching prefix.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigurationError

log = logging.getLogger("ravel.agent")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` defaults to ``input`` when a model has no discount."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for one call's tokens."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        usd = (prompt_tokens - cached) * self.input + cached * cached_price
        return (usd + completion_tokens * self.output) / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
}


def _parse_price(model: str, raw: Any) -> Price:
    try:
        if isinstance(raw, list | tuple) and len(raw) in (2, 3):
            values = [float(v) for v in raw]
            return Price(*values)
        if isinstance(raw, Mapping):
            unknown = set(raw) - {"input", "output", "cached_input"}
            if not unknown:
                cached = raw.get("cached_input")
                return Price(
                    float(raw["input"]),
                    float(raw["output"]),
                    None if cached is None else float(cached),
                )
    except (KeyError, TypeError, ValueError):
        pass
    raise ConfigurationError(
        f'RAVEL_PRICES: the price of {model!r} must be {{"input": USD, "output": USD, '
        f'"cached_input": USD}} per 1M tokens, or [input, output]; got {raw!r:.100}'
    )


@functools.lru_cache(maxsize=8)
def _table(override: str) -> dict[str, Price]:
    table = dict(DEFAULT_PRICES)
    if override.strip():
        try:
            data = json.loads(override)
        except ValueError as exc:
            raise ConfigurationError(f"RAVEL_PRICES is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigurationError("RAVEL_PRICES must be a JSON object: model -> price")
        table.update({str(m): _parse_price(str(m), p) for m, p in data.items()})
    return table


def price_table() -> dict[str, Price]:
    """The prices in effect: the built-in table with ``RAVEL_PRICES`` applied."""
    # Read per call (cached by value) so a changed environment takes effect in tests.
    return _table(os.environ.get("RAVEL_PRICES", ""))


def price_of(model: str | None) -> Price | None:
    """The price of ``model``: exact name, else the longest matching prefix, else ``"*"``."""
    table = price_table()
    if model:
        if model in table:
            return table[model]
        prefixes = [m for m in table if m != "*" and model.startswith(m)]
        if prefixes:
            return table[max(prefixes, key=len)]
    return table.get("*")


@functools.lru_cache(maxsize=64)
def _warn_unpriced(model: str | None) -> None:
    log.warning("no price for model %r: its calls are recorded at $0; set RAVEL_PRICES", model)


def cost_usd(
    model: str | None, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """USD for one call; 0.0 (with a warning, once per model) for a model without a price."""
    price = price_of(model)
    if price is None:
        _warn_unpriced(model)
        return 0.0
    return price.cost(prompt_tokens, completion_tokens, cached_tokens)
