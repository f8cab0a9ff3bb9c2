"""The ordered provider list (GENERATION_PROVIDERS) and the fallback policy over it.

Policy (also in docs/architecture.md): a `GenerationError` or a failed task with `fallback=True`
(rate limits, outages, retries exhausted, provider-internal failures such as Runway's
`INTERNAL.*`) moves the job to the next provider in the list; one with `fallback=False`
(safety rejections, invalid input) fails the job outright. The last provider's failure fails
the job with that provider's code.

Two failures never fall back, because the first task may be paid: `PROVIDER_ANSWER_LOST` (the
create reached the provider, its answer was lost: the task may be live) and
`OUTPUT_DOWNLOAD_FAILED` / `OUTPUT_URL_EXPIRED` (the task finished and was paid; its output is
downloaded again, from a fresh URL, never generated again).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from typing import Any

from zencourt_pipeline.domain import PROVIDERS, Provider
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import VideoGenerator
from zencourt_pipeline.providers.rates import merged_rates, task_cost_usd

# Failures that are about the input, not the provider: another provider would refuse it too
# (or must not be asked: safety). Every other failure moves the job to the next provider.
FINAL_CODES = frozenset(
    {
        ErrorCode.INVALID_INPUT,
        ErrorCode.UNSUPPORTED_FORMAT,
        ErrorCode.RUNWAY_SAFETY_REJECTED,
        ErrorCode.FAL_CONTENT_POLICY,
        ErrorCode.CANCELED,
        # a second provider would be a second payment for a task that may be (or is) paid
        ErrorCode.PROVIDER_ANSWER_LOST,
        ErrorCode.OUTPUT_DOWNLOAD_FAILED,
        ErrorCode.OUTPUT_URL_EXPIRED,
    }
)


def generator_class(provider: Provider) -> type[VideoGenerator]:
    """The client class of `provider` (the registry's `module:Class`, imported on first use: a run
    worker imports only the clients it configures)."""
    module, _, name = PROVIDERS[provider].client.partition(":")
    return getattr(importlib.import_module(module), name)


def should_fall_back(error_code: str | None) -> bool:
    return error_code not in FINAL_CODES


def job_seed(job_id: str) -> int:
    """A stable per-job seed (0..2^32-1): the same job always gets the same motion / seed."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")


DEFAULT_PROMPTS = {
    "exterior": "slow cinematic drone-style pull back revealing the home's facade, natural daylight",
    "kitchen": "smooth slow dolly across the kitchen, bright and inviting, steady camera",
    "living": "gentle slow push-in through the living room, warm natural light, steady camera",
    "bedroom": "calm slow pan across the bedroom, soft light, steady camera",
    "bathroom": "slow steady push-in on the bathroom, clean bright light",
    "dining": "slow lateral dolly past the dining area, warm light, steady camera",
}
GENERIC_PROMPT = "slow smooth cinematic camera move through the room, real estate video, steady camera, natural light"


def default_prompt(room_name: str | None) -> str:
    name = (room_name or "").lower()
    for keyword, prompt in DEFAULT_PROMPTS.items():
        if keyword in name:
            return prompt
    return GENERIC_PROMPT


class ProviderChain:
    """The configured generators in fallback order, and the rate table their tasks are priced by
    (`rates`: `Settings.provider_rates`, ZENCOURT_PROVIDER_RATES, merged over the published one)."""

    def __init__(
        self, generators: Mapping[str, VideoGenerator], order: list[str], rates: Mapping[str, Any] | None = None
    ):
        missing = [name for name in order if name not in generators]
        if missing:
            raise ValueError(f"no generator configured for {missing}")
        self.generators = dict(generators)
        self.order = list(order)
        self.rates = merged_rates(rates)

    def task_cost(
        self, provider: str, model: str | None, duration_seconds: float, credits: float | None = None
    ) -> tuple[float | None, str | None]:
        """(USD, source) of one task of `provider` at this chain's rates (`rates.task_cost_usd`)."""
        return task_cost_usd(provider, model, duration_seconds, credits, rates=self.rates)

    def get(self, name: str) -> VideoGenerator:
        return self.generators[name]

    def after(self, name: str | None) -> list[str]:
        """Providers to try after `name` (all of them when `name` is None)."""
        if name is None or name not in self.order:
            return list(self.order)
        return self.order[self.order.index(name) + 1 :]

    def close(self) -> None:
        for generator in self.generators.values():
            generator.close()
