"""HttpVideoGenerator, the one base of the HTTP providers: each provider's defaults, the options
every provider takes, the key check, and the create and read plumbing it owns."""

from __future__ import annotations

import httpx
import pytest

from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.providers.base import GenerationError
from zencourt_pipeline.providers.fal import FalGenerator
from zencourt_pipeline.providers.http import READ_POLICY
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, MaxJitter

DOWNLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def test_each_provider_keeps_its_defaults():
    runway, fal = RunwayGenerator("k"), FalGenerator("k")
    try:
        assert runway.timeout == httpx.Timeout(30.0, connect=10.0)
        assert runway.create_policy == RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=20.0, max_total_seconds=45.0)
        assert fal.timeout == httpx.Timeout(60.0, connect=10.0)
        assert fal.create_policy == RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0, max_total_seconds=30.0)
        for gen in (runway, fal):
            assert gen.read_policy == READ_POLICY == RetryPolicy(4, 1.0, 15.0, 60.0)
            assert gen.download_timeout == DOWNLOAD_TIMEOUT and gen.max_download_bytes == 512 * 1024 * 1024
            assert (gen.fetch_policy.max_bytes, gen.fetch_policy.total_seconds) == (512 * 1024 * 1024, 600.0)
            assert gen._client.timeout == gen.timeout
    finally:
        runway.close()
        fal.close()


@pytest.mark.parametrize("make", [RunwayGenerator, FalGenerator])
def test_the_shared_options_reach_the_base(make):
    clock, policy, client = FakeClock(), RetryPolicy(max_attempts=2), httpx.Client()
    gen = make(
        "k", timeout=None, create_policy=policy, read_policy=policy, client=client, sleep=clock.sleep, clock=clock,
        rng=MaxJitter(), max_download_bytes=1000, allowed_private_hosts=["media.internal"], download_total_seconds=9,
    )  # fmt: skip
    assert gen.timeout is None  # None is "no timeout", not "the default"
    assert gen.create_policy is policy and gen.read_policy is policy and gen._client is client
    assert gen._sleep == clock.sleep and gen._clock is clock and isinstance(gen._rng, MaxJitter)
    assert "media.internal" in gen.fetch_policy.allowed_private_hosts
    assert (gen.fetch_policy.max_bytes, gen.fetch_policy.total_seconds) == (1000, 9)
    gen.close()
    assert not client.is_closed  # a client passed in is the caller's to close
    client.close()
    with pytest.raises(TypeError):
        make("k", no_such_option=1)


def test_a_missing_key_is_refused_before_anything_else():
    with pytest.raises(ValueError, match=r"a Runway API key is required \(RUNWAY_API_KEY\)"):
        RunwayGenerator("")
    with pytest.raises(ValueError, match=r"a fal API key is required \(FAL_KEY\)"):
        FalGenerator("", model="no-slash")
    with pytest.raises(ValueError, match="owner/app"):
        FalGenerator("k", model="no-slash")


@pytest.mark.parametrize(("make", "code"), [(RunwayGenerator, "RUNWAY_UNAVAILABLE"), (FalGenerator, "FAL_UNAVAILABLE")])
def test_reads_that_never_answer_are_the_providers_unavailable(make, code):
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    clock = FakeClock()
    gen = make("k", transport=httpx.MockTransport(refuse), sleep=clock.sleep, clock=clock, rng=MaxJitter())
    with pytest.raises(GenerationError) as err:
        gen._read("GET", "https://api.test/x")
    assert (err.value.code, err.value.fallback, err.value.retryable) == (code, True, True)
    assert len(clock.sleeps) == READ_POLICY.max_attempts - 1
    gen.close()
