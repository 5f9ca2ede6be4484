"""The bounce pages' tables as CSV (every address with its whole diagnostic, by class, by
reason) and their chart: the same access as the pages, and cells that cannot run."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from bounces import intake
from bounces.models import BounceEvent
from lists.models import ListRole, Subscription
from tests.bounces.returned import message, sent_to, verp_address

pytestmark = pytest.mark.django_db

TABLES = ["addresses", "classes", "reasons"]


@pytest.fixture
def bounced(owner):  # noqa: ANN001, ANN201
    """A campaign with one hard bounce, one soft bounce and one complaint."""
    ann = sent_to(owner, "ann@reader.example")
    bob = sent_to(owner, "bob@reader.example", campaign=ann.campaign, mailing_list=None)
    cat = sent_to(owner, "cat@reader.example", campaign=ann.campaign)
    for delivery, name in ((ann, "dsn_user_unknown.eml"), (bob, "dsn_mailbox_full.eml"),
                           (cat, "arf_complaint.eml")):  # fmt: skip
        raw = message(name, recipient=delivery.subscriber.email)
        intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    return ann


def list_of(delivery):  # noqa: ANN001, ANN201
    return Subscription.objects.get(subscriber=delivery.subscriber).mailing_list


def read_csv(response) -> list[list[str]]:  # noqa: ANN001
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def campaign_url(delivery, table: str) -> str:  # noqa: ANN001
    return reverse("bounces:campaign-export", args=[delivery.campaign.uuid, table])


def list_url(delivery, table: str) -> str:  # noqa: ANN001
    return reverse("bounces:list-export", args=[list_of(delivery).uuid, table])


@pytest.mark.parametrize("table", TABLES)
def test_owner_downloads_each_table_and_a_stranger_gets_404(
    client, owner, stranger, bounced, table
) -> None:  # noqa: ANN001
    client.force_login(owner)
    assert read_csv(client.get(campaign_url(bounced, table)))[0]
    assert read_csv(client.get(list_url(bounced, table)))[0]
    client.force_login(stranger)
    assert client.get(campaign_url(bounced, table)).status_code == 404
    assert client.get(list_url(bounced, table)).status_code == 404


def test_an_unknown_table_is_a_404(owner_client, bounced) -> None:  # noqa: ANN001
    assert owner_client.get(campaign_url(bounced, "raw")).status_code == 404


def test_the_campaign_csv_holds_every_address_with_its_whole_diagnostic(
    owner_client, bounced
) -> None:  # noqa: ANN001
    long = "550 5.1.1 " + "x" * 600  # the page cuts diagnostics at 300 characters
    BounceEvent.objects.filter(recipient="ann@reader.example").update(diagnostic=long)
    rows = read_csv(owner_client.get(campaign_url(bounced, "addresses")))
    assert rows[0] == [
        "received_at", "address", "class", "status_code", "reply_code", "diagnostic",
    ]  # fmt: skip
    by_address = {row[1]: row for row in rows[1:]}
    assert set(by_address) == {"ann@reader.example", "bob@reader.example", "cat@reader.example"}
    assert by_address["ann@reader.example"][2:4] == ["hard", "5.1.1"]
    assert by_address["ann@reader.example"][-1] == long


def test_the_address_csv_follows_the_pages_class_filter(owner_client, bounced) -> None:  # noqa: ANN001
    page = owner_client.get(
        reverse("bounces:campaign", args=[bounced.campaign.uuid]), {"class": "soft"}
    )
    url = campaign_url(bounced, "addresses") + "?class=soft"
    assert url in page.content.decode()
    rows = read_csv(owner_client.get(url))
    assert [row[1] for row in rows[1:]] == ["bob@reader.example"]


def test_class_and_reason_tables_match_the_page(owner_client, bounced) -> None:  # noqa: ANN001
    summary = owner_client.get(reverse("bounces:campaign", args=[bounced.campaign.uuid])).context[
        "summary"
    ]
    classes = read_csv(owner_client.get(campaign_url(bounced, "classes")))
    assert classes[1:] == [[value, label, str(n)] for value, label, n in summary.by_class]
    reasons = read_csv(owner_client.get(campaign_url(bounced, "reasons")))
    assert reasons[1:] == [[label, code, str(n)] for label, code, n in summary.by_reason]


def test_a_viewer_downloads_the_lists_bounces_with_their_campaign(
    client, delegate, bounced
) -> None:  # noqa: ANN001
    url = list_url(bounced, "addresses")
    client.force_login(delegate)
    assert client.get(url).status_code == 404
    ListRole.objects.create(mailing_list=list_of(bounced), user=delegate, role="viewer")
    rows = read_csv(client.get(url))
    assert rows[0][5] == "campaign"
    assert [(row[1], row[5]) for row in rows[1:]] == [("ann@reader.example", bounced.campaign.name)]


def test_cells_that_start_a_formula_are_neutralised(owner_client, bounced) -> None:  # noqa: ANN001
    BounceEvent.objects.filter(recipient="ann@reader.example").update(
        diagnostic='=HYPERLINK("http://evil.example")', recipient="@ann@reader.example"
    )
    rows = read_csv(owner_client.get(campaign_url(bounced, "addresses")))
    ann = next(row for row in rows if "ann@reader.example" in row[1])
    assert ann[1] == "'@ann@reader.example"
    assert ann[-1] == '\'=HYPERLINK("http://evil.example")'


def test_the_pages_chart_the_bounces_by_class(owner_client, bounced) -> None:  # noqa: ANN001
    for url in (
        reverse("bounces:campaign", args=[bounced.campaign.uuid]),
        reverse("bounces:list", args=[list_of(bounced).uuid]),
    ):
        page = owner_client.get(url).content.decode()
        assert "<svg" in page and "Bounces by class</title>" in page
        assert "Hard bounce: Events 1</title>" in page
