"""Custom field definitions: the account's own, created, edited and deleted in the panel."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists.models import CustomField
from tests.factories import CustomFieldFactory, SubscriberFactory


def post_field(client, **data):  # noqa: ANN001, ANN003, ANN201
    payload = {"key": "city", "label": "City", "type": "text", "position": "0", **data}
    return client.post(reverse("lists:field-create"), payload)


def test_owner_adds_a_text_field(owner_client, owner) -> None:  # noqa: ANN001
    response = post_field(owner_client, in_forms="on")
    assert response.status_code == 302
    field = CustomField.objects.get(account=owner)
    assert (field.key, field.label, field.type, field.in_forms, field.choices) == (
        "city",
        "City",
        "text",
        True,
        [],
    )


def test_a_choice_field_needs_choices(owner_client, owner) -> None:  # noqa: ANN001
    response = post_field(owner_client, key="plan", type="choice", choices_text="  \n")
    assert response.status_code == 200
    assert "A choice field needs at least one choice." in response.content.decode()
    assert not CustomField.objects.exists()
    post_field(owner_client, key="plan", type="choice", choices_text="free\n pro \nfree\n")
    assert CustomField.objects.get(account=owner).choices == ["free", "pro"]


@pytest.mark.parametrize("key", ["City", "1st", "my-key", "", "a" * 51, "with space"])
def test_a_key_must_be_an_identifier(owner_client, key: str) -> None:  # noqa: ANN001
    response = post_field(owner_client, key=key)
    assert response.status_code == 200
    assert not CustomField.objects.exists()


def test_a_key_is_unique_per_account_only(owner_client, owner, stranger) -> None:  # noqa: ANN001
    CustomFieldFactory(account=stranger, key="city")
    assert post_field(owner_client).status_code == 302
    response = post_field(owner_client, label="Town")
    assert "You already have a field with this key." in response.content.decode()
    assert CustomField.objects.filter(account=owner).count() == 1


def test_editing_keeps_key_and_type(owner_client, owner) -> None:  # noqa: ANN001
    field = CustomFieldFactory(account=owner, key="age", label="Age", type="number")
    url = reverse("lists:field-edit", args=["age"])
    data = {"key": "other", "label": "Age in years", "type": "text", "position": "3"}
    response = owner_client.post(url, data)
    assert response.status_code == 302
    field.refresh_from_db()
    assert (field.key, field.type, field.label, field.position) == (
        "age",
        "number",
        "Age in years",
        3,
    )


def test_deleting_a_field_leaves_stored_values(owner_client, owner) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="city")
    subscriber = SubscriberFactory(account=owner, fields={"city": "Oslo"})
    page = owner_client.get(reverse("lists:field-delete", args=["city"]))
    assert "stay stored but unused" in page.content.decode()
    response = owner_client.post(reverse("lists:field-delete", args=["city"]))
    assert response.status_code == 302
    assert not CustomField.objects.exists()
    subscriber.refresh_from_db()
    assert subscriber.fields == {"city": "Oslo"}


def test_index_lists_only_the_accounts_fields(owner_client, owner, stranger) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="mine", label="Mine")
    CustomFieldFactory(account=stranger, key="theirs", label="Theirs")
    body = owner_client.get(reverse("lists:field-index")).content.decode()
    assert "Mine" in body
    assert "Theirs" not in body


@pytest.mark.parametrize("name", ["lists:field-edit", "lists:field-delete"])
def test_stranger_gets_404(client, owner, stranger, name: str) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="city")
    client.force_login(owner)
    assert client.get(reverse(name, args=["city"])).status_code == 200
    client.force_login(stranger)
    assert client.get(reverse(name, args=["city"])).status_code == 404
    assert client.post(reverse(name, args=["city"]), {"label": "x"}).status_code == 404
    assert CustomField.objects.get(key="city").label == "City"
