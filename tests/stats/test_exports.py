"""CSV exports of the statistics tables: who may download them, and cells that cannot run."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from lists.models import ListRole
from stats import reports
from stats.models import CampaignDomainStats, FailureReport, ListDailyStats, TrackingEvent
from tests.factories import MailingListFactory, SubscriptionFactory
from tests.stats.dashboard_data import event, fill_rollups, sent_campaign

CAMPAIGN_TABLES = ["numbers", "hourly", "links", "domains", "bounces", "bounce-classes",
                   "unsubscribes", "unsubscribe-reasons"]  # fmt: skip
DANGEROUS = ["=1+2", "+SUM(A1)", "-3", "@cmd", "\tlead", "\rlead"]


def read_csv(response) -> list[list[str]]:  # noqa: ANN001
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.fixture
def campaign(owner):  # noqa: ANN001, ANN201
    found = sent_campaign(owner)
    fill_rollups(found)
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("table", CAMPAIGN_TABLES)
def test_owner_downloads_each_campaign_table_and_stranger_gets_404(
    client, campaign, owner, stranger, table
) -> None:  # noqa: ANN001, E501
    url = reverse("stats:campaign-export", args=[campaign.uuid, table])
    client.force_login(owner)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert read_csv(response)[0]  # a header row
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_an_unknown_table_is_a_404(client, campaign, owner) -> None:  # noqa: ANN001
    client.force_login(owner)
    assert (
        client.get(reverse("stats:campaign-export", args=[campaign.uuid, "secrets"])).status_code
        == 404
    )
    assert client.get(reverse("stats:index-export", args=["secrets"])).status_code == 404


@pytest.mark.django_db
def test_cells_that_start_a_formula_are_neutralised(client, campaign, owner) -> None:  # noqa: ANN001
    CampaignDomainStats.objects.bulk_create(
        CampaignDomainStats(campaign=campaign, domain=text, sent=1000 + i)
        for i, text in enumerate(DANGEROUS)
    )
    TrackingEvent.objects.bulk_create(
        event(
            "unsubscribed", account_id=owner.id, campaign_id=campaign.id, details={"reason": text}
        )
        for text in DANGEROUS
    )
    client.force_login(owner)
    domains = read_csv(
        client.get(reverse("stats:campaign-export", args=[campaign.uuid, "domains"]))
    )
    reasons = read_csv(
        client.get(reverse("stats:campaign-export", args=[campaign.uuid, "unsubscribes"]))
    )
    for rows, column in ((domains, 0), (reasons, 1)):
        cells = {row[column] for row in rows[1:]}
        assert {"'" + text for text in DANGEROUS} <= cells
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


@pytest.mark.django_db
def test_key_numbers_csv_matches_the_rollup(client, campaign, owner) -> None:  # noqa: ANN001
    client.force_login(owner)
    rows = read_csv(client.get(reverse("stats:campaign-export", args=[campaign.uuid, "numbers"])))
    by_label = {row[0]: row[1:] for row in rows[1:]}
    assert by_label["Sent"] == ["980", ""]
    assert by_label["Unique opens (people)"] == ["245", "0.2500"]
    assert by_label["Unique opens (machines)"][0] == "300"


@pytest.mark.django_db
def test_delegate_exports_the_daily_table_of_a_granted_list_only(
    client, owner, delegate, stranger
) -> None:  # noqa: ANN001, E501
    shared = MailingListFactory(owner=owner)
    private = MailingListFactory(owner=owner)
    ListRole.objects.create(mailing_list=shared, user=delegate, role="viewer")
    ListDailyStats.objects.create(
        mailing_list=shared, day=timezone.localdate(), subscribed=5, size=5
    )
    client.force_login(delegate)
    rows = read_csv(client.get(reverse("stats:list-export", args=[shared.uuid])))
    assert rows[0] == [
        "day",
        "subscribed",
        "confirmed",
        "unsubscribed",
        "bounced",
        "complained",
        "size",
    ]
    assert rows[-1][1] == "5"
    assert client.get(reverse("stats:list-export", args=[private.uuid])).status_code == 404
    client.force_login(stranger)
    assert client.get(reverse("stats:list-export", args=[shared.uuid])).status_code == 404


@pytest.mark.django_db
def test_timeline_export_is_the_subscribers_events_only(client, owner, stranger) -> None:  # noqa: ANN001
    subscription = SubscriptionFactory(mailing_list=MailingListFactory(owner=owner))
    someone_else = SubscriptionFactory(mailing_list=subscription.mailing_list).subscriber
    TrackingEvent.objects.bulk_create(
        [
            event(
                "opened",
                account_id=owner.id,
                subscriber_id=subscription.subscriber_id,
                recipient_domain="=x.example",
            ),
            event(
                "opened",
                account_id=owner.id,
                subscriber_id=someone_else.id,
                recipient_domain="other.example",
            ),
        ]
    )
    url = reverse("stats:subscriber-export", args=[subscription.subscriber.uuid])
    client.force_login(owner)
    rows = read_csv(client.get(url))
    assert len(rows) == 2
    assert rows[1][-1] == "'=x.example"
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_failure_report_tables_export_when_done_and_only_to_their_account(
    client, owner, stranger
) -> None:  # noqa: ANN001, E501
    now = timezone.now()
    TrackingEvent.objects.bulk_create(
        event(
            "bounced",
            at=now - datetime.timedelta(hours=i + 1),
            account_id=owner.id,
            recipient_domain="@evil.example",
        )
        for i in range(3)
    )
    report = reports.request_report(
        account=owner, requested_by=owner, start=now - datetime.timedelta(days=1), end=now, parts=2
    )
    url = reverse("stats:report-export", args=[report.uuid, "domains"])
    client.force_login(owner)
    assert client.get(url).status_code == 404  # still running
    for part in report.parts.all():
        reports.run_part(part.id)
    assert FailureReport.objects.get(id=report.id).status == "done"
    rows = read_csv(client.get(url))
    assert rows[1] == ["'@evil.example", "'@evil.example", "0", "3", "3"]
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_bounces_by_class_export_counts_each_class(client, owner) -> None:  # noqa: ANN001
    from bounces import intake
    from tests.bounces.returned import message, sent_to, verp_address

    ann = sent_to(owner, "ann@reader.example")
    bob = sent_to(owner, "bob@reader.example", campaign=ann.campaign)
    cat = sent_to(owner, "cat@reader.example", campaign=ann.campaign)
    for delivery, name in ((ann, "dsn_user_unknown.eml"), (bob, "dsn_user_unknown.eml"),
                           (cat, "dsn_mailbox_full.eml")):  # fmt: skip
        raw = message(name, recipient=delivery.subscriber.email)
        intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    client.force_login(owner)
    url = reverse("stats:campaign-export", args=[ann.campaign.uuid, "bounce-classes"])
    assert read_csv(client.get(url)) == [
        ["class", "label", "count"], ["hard", "Hard bounce", "2"], ["soft", "Soft bounce", "1"],
    ]  # fmt: skip
    page = client.get(reverse("stats:campaign-bounces", args=[ann.campaign.uuid])).content.decode()
    assert url in page
    assert "Bounces by class</title>" in page and "Hard bounce: Bounces 2</title>" in page


@pytest.mark.django_db
def test_unsubscribe_reasons_export_is_the_pages_table(client, campaign, owner) -> None:  # noqa: ANN001
    TrackingEvent.objects.bulk_create(
        event("unsubscribed", account_id=owner.id, campaign_id=campaign.id,
              details={"reason": reason})
        for reason in ["Too many mails", "Too many mails", "", "=1+1"]
    )  # fmt: skip
    client.force_login(owner)
    rows = read_csv(
        client.get(reverse("stats:campaign-export", args=[campaign.uuid, "unsubscribe-reasons"]))
    )
    assert rows == [
        ["reason", "people"], ["Too many mails", "2"], ["(no reason given)", "1"], ["'=1+1", "1"],
    ]  # fmt: skip


@pytest.mark.django_db
def test_list_engagement_export_is_the_owners_alone(
    client, campaign, owner, delegate, stranger
) -> None:  # noqa: ANN001, E501
    shared = MailingListFactory(owner=owner)
    campaign.lists.set([shared])
    ListRole.objects.create(mailing_list=shared, user=delegate, role="viewer")
    url = reverse("stats:list-engagement-export", args=[shared.uuid])
    client.force_login(owner)
    rows = read_csv(client.get(url))
    assert rows[0][:5] == ["campaign", "started_at", "sent", "unique_human_opens", "open_rate"]
    assert rows[1][0] == campaign.name and rows[1][2:7] == ["980", "245", "0.2500", "49", "0.0500"]
    page = client.get(reverse("stats:list", args=[shared.uuid])).content.decode()
    assert url in page
    # A delegate sees the list's numbers but not the owner's campaigns, on the page or here.
    client.force_login(delegate)
    assert client.get(url).status_code == 404
    client.force_login(stranger)
    assert client.get(url).status_code == 404
