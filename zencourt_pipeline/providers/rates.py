"""What a generation task costs: the provider's own figure when it gives one, else the published rate.

Pure data and functions, no I/O: the overrides in force (`Settings.provider_rates`) are passed in
(`merged_rates`), the environment is never read here.

The rate table (USD; figures from the vendors' public price pages, late 2026):

    provider  model                                               rate
    runway    gen4_turbo                                           5 credits/s
    runway    gen4.5                                              12 credits/s
    runway    gen3a_turbo                                          5 credits/s
    runway    veo3                                                40 credits/s
              (a Runway credit is $0.01)
    fal       fal-ai/kling-video/v2.1/standard/image-to-video     $0.25 per 5 s + $0.05 per extra s
    fal       fal-ai/kling-video/v2.1/pro/image-to-video          $0.45 per 5 s + $0.09 per extra s
    fal       fal-ai/kling-video/v2.5-turbo/pro/image-to-video    $0.35 per 5 s + $0.07 per extra s
    local     (any)                                               0

Billed seconds (`domain.PROVIDERS`): Runway bills the requested duration (our client clamps it to
`domain.CLIP_SECONDS_MIN..MAX`); fal's
Kling bills the duration it was sent, "5" or "10" (the nearest to the job's, ties shorter).
An unknown model of a known provider is priced as the provider's `default_model` (so a task
always gets an estimate); an unknown provider gets no figure.

Shape (also the shape of the `ZENCOURT_PROVIDER_RATES` override, a JSON object merged over
this table: provider-level keys replace, model entries replace per model):

    {"runway": {"usd_per_credit": 0.01, "default_model": "gen4_turbo",
                "models": {"gen4_turbo": {"credits_per_second": 5}}},
     "fal": {"default_model": "...", "models": {"<model id>": {"usd_base": 0.25,
             "base_seconds": 5, "usd_per_extra_second": 0.05}}},
     "local": {"models": {"*": {"usd_per_second": 0}}}}

A model entry prices by `credits_per_second` (times the provider's `usd_per_credit`), by
`usd_per_second`, or by `usd_base` for the first `base_seconds` plus `usd_per_extra_second`.
Provider-reported credits (`cost: {"credits": N}`, or a numeric `estimatedCost` / `cost` in
a task JSON) are converted with `usd_per_credit`; a provider without `usd_per_credit` (fal)
never reports one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from zencourt_pipeline.config import as_number, validate_rates
from zencourt_pipeline.domain import Provider, provider_spec

PROVIDER = "provider"  # cost_source: the provider reported the figure
RATE = "rate"  # cost_source: the published rate table

KLING = "fal-ai/kling-video"
DEFAULT_RATES: dict[str, Any] = {
    Provider.RUNWAY: {
        "usd_per_credit": 0.01,
        "default_model": "gen4_turbo",
        "models": {
            "gen4_turbo": {"credits_per_second": 5},
            "gen4.5": {"credits_per_second": 12},
            "gen3a_turbo": {"credits_per_second": 5},
            "veo3": {"credits_per_second": 40},
        },
    },
    Provider.FAL: {
        "default_model": f"{KLING}/v2.1/standard/image-to-video",
        "models": {
            f"{KLING}/v2.1/standard/image-to-video": {"usd_base": 0.25, "base_seconds": 5, "usd_per_extra_second": 0.05},
            f"{KLING}/v2.1/pro/image-to-video": {"usd_base": 0.45, "base_seconds": 5, "usd_per_extra_second": 0.09},
            f"{KLING}/v2.5-turbo/pro/image-to-video": {"usd_base": 0.35, "base_seconds": 5, "usd_per_extra_second": 0.07},
        },
    },
    Provider.LOCAL: {"default_model": "*", "models": {"*": {"usd_per_second": 0}}},
}


def merged_rates(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default table with `overrides` (same shape) merged over it."""
    table = copy.deepcopy(DEFAULT_RATES)
    for provider, entry in validate_rates(overrides or {}).items():
        target = table.setdefault(provider, {"models": {}})
        for key, value in entry.items():
            if key == "models":
                target.setdefault("models", {}).update(copy.deepcopy(dict(value)))
            else:
                target[key] = value
    return table


def billed_seconds(provider: str, duration_seconds: float) -> float:
    """The duration the provider bills for a job of `duration_seconds` (what our clients send):
    the registry's rule (`domain.PROVIDERS`), the duration itself for a provider it does not know."""
    seconds = float(duration_seconds or 0)
    spec = provider_spec(provider)
    return spec.billed_seconds(seconds) if spec is not None else max(0.0, seconds)


def reported_credits(data: Any) -> float | None:
    """The credits a provider's task JSON reports, if any: `cost: {"credits": N}`, a numeric
    top-level `cost`, or `estimatedCost` (a number or `{"credits": N}`). None when absent."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, Mapping):
        return None
    for key in ("cost", "estimatedCost"):
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("credits")
        number = as_number(value)
        if number is not None and number >= 0:
            return number
    return None


def _model_rate(entry: Mapping[str, Any], model: str | None) -> Mapping[str, Any] | None:
    models = entry.get("models") or {}
    return models.get(model or "") or models.get(entry.get("default_model") or "") or models.get("*")


def rate_usd(rate: Mapping[str, Any], seconds: float, usd_per_credit: float | None) -> float | None:
    if "credits_per_second" in rate:
        return None if usd_per_credit is None else rate["credits_per_second"] * seconds * usd_per_credit
    if "usd_base" in rate:
        extra = max(0.0, seconds - float(rate.get("base_seconds", 0)))
        return rate["usd_base"] + extra * float(rate.get("usd_per_extra_second", 0))
    if "usd_per_second" in rate:
        return rate["usd_per_second"] * seconds
    return None


def task_cost_usd(
    provider: str,
    model: str | None,
    duration_seconds: float,
    credits: float | None = None,
    *,
    rates: Mapping[str, Any] | None = None,
) -> tuple[float | None, str | None]:
    """(USD, source) of one task: source 'provider' when `credits` (the provider's figure) can be
    converted, else 'rate' from `rates` (a `merged_rates` table; the published one when None);
    (None, None) for a provider the table does not know."""
    table = DEFAULT_RATES if rates is None else rates
    entry = table.get(provider)
    if entry is None:
        return None, None
    usd_per_credit = as_number(entry.get("usd_per_credit"))
    credits = as_number(credits)
    if credits is not None and usd_per_credit is not None:
        return round(credits * usd_per_credit, 6), PROVIDER
    rate = _model_rate(entry, model)
    if rate is None:
        return None, None
    usd = rate_usd(rate, billed_seconds(provider, duration_seconds), usd_per_credit)
    return (None, None) if usd is None else (round(usd, 6), RATE)
