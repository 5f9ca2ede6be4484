"""bench_signup's "nothing lost" count reads the confirmations from a queue of its own."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import CommandError, call_command

from lists.management.commands import bench_signup
from lists.tasks import send_confirmation

pytestmark = pytest.mark.django_db


@pytest.mark.redis
def test_it_counts_the_confirmations_queued_in_its_own_queue_and_drops_it(settings) -> None:  # noqa: ANN001
    import redis

    broker = settings.CELERY_BROKER_URL
    queue = f"bench-test-{uuid.uuid4().hex[:8]}"
    send_confirmation.apply_async(args=[[11], 3], queue=queue)
    send_confirmation.apply_async(args=[[12, 13], 3], queue=queue)
    # Another task's message in the same queue is not a confirmation.
    send_confirmation.app.send_task("lists.tasks.send_welcome", args=[14], queue=queue)

    try:
        assert bench_signup.queued_confirmations(broker, queue) == {11, 12, 13}
    finally:
        bench_signup.drop_queue(broker, queue)

    assert not redis.Redis.from_url(broker).keys(f"*{queue}*")
    assert bench_signup.queued_confirmations(broker, queue) == set()


def test_it_refuses_a_broker_it_cannot_count(settings) -> None:  # noqa: ANN001
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.REDIS_URL = "redis://127.0.0.1:6379/9"
    with pytest.raises(CommandError, match="counts the queued confirmations in Redis"):
        call_command("bench_signup", "--seconds", "1")


def test_it_refuses_to_run_without_redis(settings) -> None:  # noqa: ANN001
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="set DATABASE_URL .* and REDIS_URL"):
        call_command("bench_signup", "--seconds", "1")
