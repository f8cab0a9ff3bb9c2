"""The one backoff formula (net/backoff.py): exponential, capped, jittered, within the attempt
and time budgets; what the paid-API calls, output downloads and photo fetches use."""

from __future__ import annotations

import random

from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.fetch import FetchPolicy
from zencourt_pipeline_tests.fakes.fixtures import MaxJitter


class MinJitter:
    """`uniform(a, b)` returns `a`: the shortest wait the jitter allows."""

    def uniform(self, low: float, high: float) -> float:
        return low


def test_full_jitter_delay_is_bounded_and_exponential():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    assert [policy.delay(i, MaxJitter()) for i in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [policy.delay(i, MinJitter()) for i in range(3)] == [0.0, 0.0, 0.0]
    rng = random.Random(7)
    for i in range(6):
        assert 0.0 <= policy.delay(i, rng) <= min(10.0, 2**i)


def test_full_jitter_draws_uniform_zero_to_the_step():
    """The same draw as `rng.uniform(0, step)` (what the paid-API calls always waited)."""
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    for i in range(6):
        assert policy.delay(i, random.Random(i)) == random.Random(i).uniform(0.0, min(10.0, 2**i))


def test_half_jitter_keeps_at_least_half_the_step():
    policy = FetchPolicy(retries=5, retry_base_delay=0.5).retry_policy()
    assert (policy.max_attempts, policy.max_delay, policy.jitter) == (6, 10.0, 0.5)
    assert [policy.delay(i, MaxJitter()) for i in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [policy.delay(i, MinJitter()) for i in range(3)] == [0.25, 0.5, 1.0]
    for i in range(6):  # the draw photo fetches always made: step * uniform(0.5, 1.0)
        step = min(0.5 * 2**i, 10.0)
        assert policy.delay(i, random.Random(i)) == step * random.Random(i).uniform(0.5, 1.0)


def test_attempt_and_time_budgets():
    policy = RetryPolicy(max_attempts=3, max_total_seconds=20.0)
    assert policy.allows(1, 0.0, 5.0) and policy.allows(2, 15.0, 5.0)
    assert not policy.allows(3, 0.0, 0.0)  # three attempts made: no fourth
    assert not policy.allows(1, 15.5, 5.0)  # the wait would pass the time budget
