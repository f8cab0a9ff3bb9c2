"""The task cost rate table (issue 11, defect 7): provider figures first, the published rate else."""

from __future__ import annotations

import pytest

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.providers.rates import PROVIDER, RATE, reported_credits, task_cost_usd

KLING_STD = "fal-ai/kling-video/v2.1/standard/image-to-video"


@pytest.mark.parametrize(
    ("provider", "model", "seconds", "credits", "expected"),
    [
        ("runway", "gen4_turbo", 5, None, (0.25, RATE)),  # 5 credits/s x 5 s x $0.01
        ("runway", "gen4_turbo", 10, None, (0.5, RATE)),
        ("runway", "unknown-model", 5, None, (0.25, RATE)),  # priced as the default model
        ("runway", "gen4_turbo", 5, 30, (0.3, PROVIDER)),  # the provider's figure wins
        ("fal", KLING_STD, 5, None, (0.25, RATE)),
        ("fal", KLING_STD, 10, None, (0.5, RATE)),  # $0.25 + 5 extra s x $0.05
        ("fal", KLING_STD, 5, 99, (0.25, RATE)),  # fal has no credits: the rate stands
        ("local", None, 5, None, (0.0, RATE)),
        ("nobody", None, 5, None, (None, None)),
    ],
)
def test_task_cost(provider, model, seconds, credits, expected):
    assert task_cost_usd(provider, model, seconds, credits) == expected


def test_reported_credits_shapes():
    assert reported_credits({"cost": {"credits": 25}}) == 25
    assert reported_credits({"estimatedCost": 10}) == 10
    assert reported_credits('{"cost": 7}') == 7
    assert reported_credits({"status": "SUCCEEDED"}) is None
    assert reported_credits({"cost": {"credits": -1}}) is None
    assert reported_credits("not json") is None


def test_the_rate_override_comes_from_settings_through_the_chain(monkeypatch, tmp_path):
    """ZENCOURT_PROVIDER_RATES is read by `Settings`, reaches the generators resource and prices the
    chain's tasks; `task_cost_usd` itself never reads the environment."""
    settings = Settings.from_env({"ZENCOURT_PROVIDER_RATES": '{"runway": {"usd_per_credit": 0.02}}'})
    generators = build_resources(settings.model_copy(update={"data_dir": tmp_path}), env_refs=False)["generators"]
    assert generators.provider_rates == {"runway": {"usd_per_credit": 0.02}}
    chain = ProviderChain({}, [], generators.provider_rates)
    assert chain.task_cost("runway", "gen4_turbo", 5) == (0.5, RATE)
    assert chain.task_cost("fal", KLING_STD, 5) == (0.25, RATE)  # other providers keep the published rates
    assert ProviderChain({}, []).task_cost("runway", "gen4_turbo", 5) == (0.25, RATE)
    monkeypatch.setenv("ZENCOURT_PROVIDER_RATES", '{"runway": {"usd_per_credit": 0.02}}')
    assert task_cost_usd("runway", "gen4_turbo", 5) == (0.25, RATE)  # no environment read per call


def test_a_malformed_override_is_refused_at_start_up():
    with pytest.raises(ValueError, match="ZENCOURT_PROVIDER_RATES"):
        Settings.from_env({"ZENCOURT_PROVIDER_RATES": "{not json"})
    with pytest.raises(ValueError, match="usd_per_credit"):
        Settings.from_env({"ZENCOURT_PROVIDER_RATES": '{"runway": {"usd_per_credit": "free"}}'})
