"""From the buffer to the log: nothing lost, nothing counted twice, rollups equal a rebuild."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stats import drain, rollups, tracking
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    DeliveryEngagement,
    LinkEngagement,
    LinkStats,
    TrackingEvent,
)
from tests.stats.conftest import make_sent_campaign

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def mixed_hits(sent, count: int, seed: int = 7) -> list[tracking.Hit]:  # noqa: ANN001
    """Opens and clicks of people and machines, bursts and repeats, over a few hours."""
    rng = random.Random(seed)
    start = sent.deliveries[0].sent_at.timestamp() + 60
    hits = []
    for n in range(count):
        delivery = rng.choice(sent.deliveries)
        at = start + rng.randrange(0, 4 * 3600) + rng.random()
        kind = rng.choice("ooc")
        agent, ip, network = rng.choice(
            [(BROWSER, "198.51.100.0/24", ""), ("Mozilla/5.0", "17.58.0.0/24", "apple")]
        )
        hits.append(tracking.Hit(kind, sent.campaign.id, delivery.id, rng.choice((1, 2)),
                                 at, agent, ip, network))  # fmt: skip
        if n % 9 == 0:  # a scanner clicking both links in one second
            hits.append(tracking.Hit("c", sent.campaign.id, delivery.id, 1, at, BROWSER, "", ""))
            hits.append(tracking.Hit("c", sent.campaign.id, delivery.id, 2, at, BROWSER, "", ""))
    return hits


def rollup_snapshot(campaign_id: int) -> dict:
    def rows(model, *order: str) -> list[dict]:  # noqa: ANN001
        return [
            {k: v for k, v in row.items() if k not in ("id", "updated_at")}
            for row in model.objects.filter(campaign_id=campaign_id).order_by(*order).values()
        ]

    return {
        "campaign": rows(CampaignStats, "campaign_id"),
        "links": rows(LinkStats, "link_index"),
        "hours": rows(CampaignHourlyStats, "hour"),
        "domains": rows(CampaignDomainStats, "domain"),
        "engagement": rows(DeliveryEngagement, "delivery_id"),
        "link_engagement": rows(LinkEngagement, "delivery_id", "link_index"),
    }


@pytest.mark.usefixtures("no_redis")
def test_incremental_rollups_equal_a_rebuild_from_the_log(owner) -> None:  # noqa: ANN001
    sent = make_sent_campaign(owner, recipients=12)
    hits = mixed_hits(sent, 300)
    for start in range(0, len(hits), 37):  # chunks cut anywhere, firsts in any chunk
        drain.write_hits(hits[start : start + 37])
    incremental = rollup_snapshot(sent.campaign.id)
    stats = incremental["campaign"][0]
    assert stats["unique_human_opens"] and stats["unique_machine_opens"]
    assert stats["total_machine_clicks"] and stats["unique_human_clicks"]
    assert incremental["links"] and incremental["hours"] and incremental["domains"]
    rollups.rebuild_campaign(sent.campaign.id)
    assert rollup_snapshot(sent.campaign.id) == incremental


@pytest.mark.usefixtures("no_redis")
def test_draining_a_chunk_takes_the_same_queries_whatever_its_size(
    owner, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    sent = make_sent_campaign(owner, recipients=30)
    counts = []
    for size, seed in ((6, 1), (300, 2)):
        raw = [hit.encode().encode() for hit in mixed_hits(sent, size, seed)]
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(20):
            assert drain.write_chunk(f"chunk-{size}", raw) == len(raw)
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.usefixtures("redis_down")
def test_with_redis_down_every_hit_goes_straight_to_the_log(client, sent) -> None:  # noqa: ANN001
    for token in sent.tokens:
        assert client.get(f"/t/o/{token}").status_code == 200
        assert client.get(f"/t/c/{token}/1").status_code == 302
    assert TrackingEvent.objects.filter(kind="opened").count() == 3
    assert TrackingEvent.objects.filter(kind="clicked").count() == 3
    assert drain.drain() == 0  # no buffer to drain, and no error
    stats = CampaignStats.objects.get(campaign=sent.campaign)
    assert (stats.unique_human_opens, stats.unique_human_clicks) == (3, 3)


@pytest.mark.redis
def test_with_redis_up_hits_wait_in_the_buffer_until_the_drain(client, sent, buffer) -> None:  # noqa: ANN001
    for token in sent.tokens:
        client.get(f"/t/o/{token}", REMOTE_ADDR="203.0.113.77")
        client.get(f"/t/c/{token}/2", REMOTE_ADDR="203.0.113.77")
    assert not TrackingEvent.objects.exists()
    raw = buffer.lrange(tracking.BUFFER_KEY, 0, -1)
    assert len(raw) == 6 and not any(b"203.0.113.77" in hit for hit in raw)
    assert drain.drain(chunk_size=4) == 6
    assert drain.drain() == 0  # twice: nothing more, nothing twice
    assert TrackingEvent.objects.count() == 6
    assert buffer.llen(tracking.BUFFER_KEY) == buffer.llen(drain.PROCESSING_KEY) == 0
    stats = CampaignStats.objects.get(campaign=sent.campaign)
    assert (stats.total_human_opens, stats.unique_human_clicks) == (3, 3)


@pytest.mark.redis
def test_a_drain_that_died_before_its_commit_loses_nothing(client, sent, buffer) -> None:  # noqa: ANN001
    for token in sent.tokens:
        client.get(f"/t/o/{token}")
    key, raw = drain.take_chunk(buffer, 100)  # taken... and the process dies here
    assert len(raw) == 3 and buffer.llen(tracking.BUFFER_KEY) == 0
    client.get(f"/t/o/{sent.tokens[0]}")  # a new hit meanwhile
    assert drain.drain() == 4
    assert TrackingEvent.objects.count() == 4
    assert CampaignStats.objects.get(campaign=sent.campaign).total_human_opens == 4


@pytest.mark.redis
def test_a_drain_that_died_after_its_commit_counts_nothing_twice(client, sent, buffer) -> None:  # noqa: ANN001
    for token in sent.tokens:
        client.get(f"/t/c/{token}/1")
    key, raw = drain.take_chunk(buffer, 100)
    assert drain.write_chunk(key, raw) == 3  # committed... and the process dies before clearing
    assert buffer.llen(drain.PROCESSING_KEY) == 3
    assert drain.drain() == 0
    assert drain.drain() == 0
    assert buffer.llen(drain.PROCESSING_KEY) == 0
    assert TrackingEvent.objects.count() == 3
    assert CampaignStats.objects.get(campaign=sent.campaign).total_human_clicks == 3


@pytest.mark.usefixtures("no_redis")
def test_hits_of_unknown_deliveries_or_unreadable_hits_are_dropped(sent) -> None:  # noqa: ANN001
    campaign_id, delivery_id = sent.campaign.id, sent.deliveries[0].id
    raw = [
        b"not json",
        b'["o", 1]',
        tracking.Hit("o", campaign_id, 10**12, 0, 1.9e9, "", "", "").encode().encode(),
        tracking.Hit("o", campaign_id + 1, delivery_id, 0, 1.9e9, "", "", "").encode().encode(),
        tracking.Hit("o", campaign_id, delivery_id, 0, 1.9e9, "", "", "").encode().encode(),
    ]
    assert drain.write_chunk("odd-chunk", raw) == 1
    assert TrackingEvent.objects.get().delivery_id == delivery_id


# --- Scanners: several links of one mail within a second -----------------------------------


def click(sent, delivery: int, link: int, at: float) -> tracking.Hit:  # noqa: ANN001
    return tracking.Hit("c", sent.campaign.id, sent.deliveries[delivery].id, link, at,
                        BROWSER, "", "")  # fmt: skip


@pytest.mark.redis
def test_a_burst_cut_between_two_drains_is_still_a_scanner(sent, buffer) -> None:  # noqa: ANN001
    at = 1_900_000_000.9
    buffer.rpush(tracking.BUFFER_KEY, click(sent, 0, 1, at).encode())
    assert drain.drain() == 1
    # The burst's second click comes in the next chunk, with a person's click a while later.
    for hit in (click(sent, 0, 2, at + 0.3), click(sent, 0, 1, at + 30)):
        buffer.rpush(tracking.BUFFER_KEY, hit.encode())
    assert drain.drain() == 2
    flags = list(TrackingEvent.objects.order_by("occurred_at").values_list("link_index", "machine"))
    # The first click was written before the rest came, and the log is append-only.
    assert flags == [(1, False), (2, True), (1, False)]
    assert TrackingEvent.objects.get(machine=True).details["machine"] == (
        "several_links_in_one_second"
    )


@pytest.mark.usefixtures("redis_down")
def test_a_burst_written_hit_by_hit_while_redis_is_down_is_a_scanner(sent) -> None:  # noqa: ANN001
    at = 1_900_000_000.5
    for hit in (click(sent, 0, 1, at), click(sent, 0, 2, at + 0.2), click(sent, 1, 2, at + 0.2),
                click(sent, 0, 1, at + 5)):  # fmt: skip
        assert tracking.take(hit) == "database"
    flags = list(
        TrackingEvent.objects.order_by("id").values_list("delivery_id", "link_index", "machine")
    )
    first, second = sent.deliveries[0].id, sent.deliveries[1].id
    assert flags == [(first, 1, False), (first, 2, True), (second, 2, False), (first, 1, False)]
