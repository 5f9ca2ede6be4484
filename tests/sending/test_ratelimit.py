"""The shared token bucket holds its rate across processes."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import redis
from django.conf import settings

from sending.ratelimit import TokenBucket

pytestmark = pytest.mark.redis

RATE = 50.0
SECONDS = 3.0


def hammer(url: str, name: str, seconds: float, results: multiprocessing.Queue) -> None:
    bucket = TokenBucket(redis.Redis.from_url(url), name, RATE)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        grant = bucket.take(5)
        sent += grant.granted
        if not grant.granted:
            time.sleep(min(grant.wait_seconds, 0.05))
    results.put(sent)


def test_two_processes_together_stay_within_ten_percent_of_the_rate() -> None:
    name = f"test-{time.time_ns()}"
    TokenBucket(redis.Redis.from_url(settings.REDIS_URL), name, RATE).reset()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=hammer, args=(settings.REDIS_URL, name, SECONDS, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=30) for _ in workers)
    for worker in workers:
        worker.join()
    # The bucket starts full (one second of burst), then refills at RATE.
    expected = RATE * SECONDS + RATE
    assert abs(total - expected) <= expected * 0.10, (total, expected)


def test_an_empty_bucket_says_how_long_to_wait() -> None:
    bucket = TokenBucket(redis.Redis.from_url(settings.REDIS_URL), f"w-{time.time_ns()}", 10)
    assert bucket.take(10).granted == 10
    grant = bucket.take(1)
    assert grant.granted == 0
    assert 0 < grant.wait_seconds <= 0.2


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(redis.Redis.from_url(settings.REDIS_URL or "redis://x"), "bad", 0)
