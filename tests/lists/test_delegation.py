"""Delegation: granting, changing and revoking roles, seen from the delegate's side."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists.models import ListRole
from tests.factories import MailingListFactory


@pytest.fixture
def granted(owner, delegate):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="Shared news"), delegate


def _grant(client, mailing_list, who: str, role: str):  # noqa: ANN001, ANN202
    return client.post(
        reverse("lists:delegation", args=[mailing_list.uuid]), {"user": who, "role": role}
    )


@pytest.mark.django_db
def test_delegate_sees_only_granted_lists_with_their_role(client, owner, granted) -> None:  # noqa: ANN001
    mailing_list, delegate = granted
    MailingListFactory(owner=owner, name="Private news")
    client.force_login(owner)
    assert _grant(client, mailing_list, delegate.email.upper(), "viewer").status_code == 302
    client.force_login(delegate)
    page = client.get(reverse("lists:index")).content.decode()
    assert "Shared news" in page
    assert "Private news" not in page
    assert "viewer" in page
    assert owner.display_name in page


@pytest.mark.django_db
def test_role_change_and_revocation_take_effect_at_once(client, owner, granted) -> None:  # noqa: ANN001
    mailing_list, delegate = granted
    client.force_login(owner)
    _grant(client, mailing_list, delegate.username, "viewer")
    role = ListRole.objects.get(mailing_list=mailing_list, user=delegate)
    edit_url = reverse("lists:edit", args=[mailing_list.uuid])
    client.force_login(delegate)
    assert client.get(edit_url).status_code == 403

    client.force_login(owner)
    _grant(client, mailing_list, delegate.username, "manager")
    assert ListRole.objects.get(id=role.id).role == "manager"
    client.force_login(delegate)
    assert client.get(edit_url).status_code == 200

    client.force_login(owner)
    revoke_url = reverse("lists:delegation-revoke", args=[mailing_list.uuid])
    assert client.post(revoke_url, {"role_id": role.id}).status_code == 302
    client.force_login(delegate)
    assert client.get(reverse("lists:detail", args=[mailing_list.uuid])).status_code == 404
    assert "Shared news" not in client.get(reverse("lists:index")).content.decode()


@pytest.mark.django_db
def test_granting_an_unknown_user_or_the_owner_is_an_error(owner_client, owner, granted) -> None:  # noqa: ANN001
    mailing_list, _ = granted
    response = _grant(owner_client, mailing_list, "nobody-here", "viewer")
    assert response.status_code == 200
    assert "no single user" in response.content.decode()
    response = _grant(owner_client, mailing_list, owner.username, "manager")
    assert response.status_code == 200
    assert not ListRole.objects.exists()


@pytest.mark.django_db
def test_revoking_a_role_of_another_list_does_nothing(client, owner, stranger, granted) -> None:  # noqa: ANN001
    mailing_list, delegate = granted
    foreign = ListRole.objects.create(
        mailing_list=MailingListFactory(owner=stranger), user=delegate, role="viewer"
    )
    client.force_login(owner)
    client.post(
        reverse("lists:delegation-revoke", args=[mailing_list.uuid]), {"role_id": foreign.id}
    )
    assert ListRole.objects.filter(id=foreign.id).exists()
