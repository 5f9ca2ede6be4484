"""{{ sender.address }}: the postal address of the recipient's list, else of the account,
in the starting templates, the frozen campaign, previews and the web version."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns import designs, merge, preview, scheduling
from tests.factories import CampaignFactory, EmailTemplateFactory, MailingListFactory

pytestmark = pytest.mark.django_db

FOOTER = "<html><body>{{ content }}<p>{{ sender.address }}</p></body></html>"


@pytest.fixture
def footer(owner):  # noqa: ANN001, ANN201
    return EmailTemplateFactory(account=owner, html=FOOTER)


def recipient_of(list_id: int) -> dict:
    return {"subscriber": {"id": 1, "name": "A", "email": "a@x.example"}, "list": {"id": list_id}}


def test_a_list_address_overrides_the_account_address_per_recipient(owner, footer) -> None:  # noqa: ANN001
    owner.postal_address = "Olivia's News\r\nMain Street 1\n\n1000 Copenhagen\n"
    owner.save()
    own = MailingListFactory(owner=owner, postal_address="Harbour Club\nPier 2\n8000 Aarhus")
    plain = MailingListFactory(owner=owner)
    campaign = CampaignFactory(account=owner, template=footer, lists=[own, plain])
    scheduling.schedule(campaign)
    campaign.refresh_from_db()
    frozen = merge.load_frozen(campaign)
    list_line = "Harbour Club · Pier 2 · 8000 Aarhus"
    assert f"<p>{list_line}</p>" in merge.merge(frozen, recipient_of(own.pk))[1]
    account_line = "Olivia&#x27;s News · Main Street 1 · 1000 Copenhagen"
    assert f"<p>{account_line}</p>" in merge.merge(frozen, recipient_of(plain.pk))[1]


def test_sender_address_works_in_the_text_part_and_subject_on_one_line(owner, footer) -> None:  # noqa: ANN001
    owner.postal_address = "Org\nStreet 1"
    owner.save()
    campaign = CampaignFactory(
        account=owner, template=footer, subject="From {{ sender.address }}", lists=[]
    )
    subject, _html, text = preview.render(campaign)
    assert subject == "From Org · Street 1"
    assert "Org · Street 1" in text


def test_a_campaign_without_the_tag_reads_no_addresses(owner, django_assert_num_queries) -> None:  # noqa: ANN001
    campaign = CampaignFactory(account=owner, lists=[MailingListFactory(owner=owner)])
    scheduling.schedule(campaign)
    campaign.refresh_from_db()
    with django_assert_num_queries(2):  # its links and attachments
        frozen = merge.load_frozen(campaign)
    assert frozen.senders is None
    assert "sender" not in merge.merge(frozen, recipient_of(1))


def test_only_the_address_is_a_sender_tag() -> None:
    assert merge.check("{{ sender.address }}") == []
    assert merge.check("{{ sender.name }}") == [
        "Body, line 1: unknown merge tag {{ sender.name }}."
    ]


def test_the_starting_templates_use_the_tag_instead_of_a_placeholder() -> None:
    for key in designs.STARTING:
        html = designs.starting_html(key)
        assert "{{ sender.address }}" in html, key
        assert "Street and number" not in html, key


def test_the_web_version_shows_the_address(client, owner, footer) -> None:  # noqa: ANN001
    owner.postal_address = "Org\nStreet 1"
    owner.save()
    campaign = CampaignFactory(
        account=owner, template=footer, lists=[MailingListFactory(owner=owner)]
    )
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    page = client.get(reverse("campaign_public:web-version", args=[campaign.uuid]))
    assert "<p>Org · Street 1</p>" in page.content.decode()
