from __future__ import annotations

import re

import pytest
from django.contrib.admin.sites import site
from django.core import mail
from django.urls import reverse

from mailpanel.models import User
from tests.factories import PASSWORD


def test_login_with_password_shows_the_panel(client, owner) -> None:  # noqa: ANN001
    response = client.post(reverse("login"), {"username": owner.username, "password": PASSWORD})
    assert response.status_code == 302
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert owner.first_name.encode() in home.content
    assert b'href="/account/"' in home.content  # the navigation


def test_wrong_password_is_reshown_with_an_error(client, owner) -> None:  # noqa: ANN001
    response = client.post(reverse("login"), {"username": owner.username, "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_deactivated_user_cannot_sign_in(client, owner) -> None:  # noqa: ANN001
    owner.is_active = False
    owner.save()
    response = client.post(reverse("login"), {"username": owner.username, "password": PASSWORD})
    assert response.status_code == 200


def test_account_page_saves_sender_and_time_zone(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("account"),
        {
            "first_name": "Olivia",
            "last_name": "Owner",
            "email": "olivia@example.com",
            "time_zone": "Europe/Copenhagen",
            "default_from_name": "Olivia's News",
            "default_from_email": "news@example.com",
            "postal_address": "Olivia's News\nMain Street 1\n1000 Copenhagen",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.time_zone == "Europe/Copenhagen"
    assert owner.default_from_email == "news@example.com"
    assert owner.postal_address.splitlines() == [
        "Olivia's News",
        "Main Street 1",
        "1000 Copenhagen",
    ]
    page = owner_client.get(reverse("account"))
    assert b"Your account settings were saved." in page.content


def test_sender_name_with_a_line_break_is_refused(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("account"),
        {
            "email": "o@example.com",
            "time_zone": "UTC",
            "default_from_name": "x\r\nBcc: a@b.c",
            "default_from_email": "news@example.com",
        },
    )
    assert response.status_code == 200
    assert b"cannot contain line breaks" in response.content
    owner.refresh_from_db()
    assert "Bcc" not in owner.default_from_name


def test_unknown_time_zone_is_refused(owner_client) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("account"), {"email": "o@example.com", "time_zone": "Mars/Base"}
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content


def test_password_change(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-long-pass-2026",
            "new_password2": "a-new-long-pass-2026",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a-new-long-pass-2026")


def test_password_reset_mails_a_working_link(client, owner) -> None:  # noqa: ANN001
    client.post(reverse("password_reset"), {"email": owner.email})
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your mailpanel password"
    link = re.search(r"http://testserver(\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert b"Choose a new password" in form_page.content
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "reset-long-pass-2026", "new_password2": "reset-long-pass-2026"},
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("reset-long-pass-2026")


def test_password_reset_for_an_unknown_address_looks_the_same(client, db) -> None:  # noqa: ANN001
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


@pytest.mark.django_db
def test_signup_is_off_by_default(client) -> None:  # noqa: ANN001
    assert client.get(reverse("signup")).status_code == 404
    assert b"Create one" not in client.get(reverse("login")).content


@pytest.mark.django_db
def test_signup_when_switched_on(client, settings) -> None:  # noqa: ANN001
    settings.SIGNUP_ENABLED = True
    assert b"Create one" in client.get(reverse("login")).content
    response = client.post(
        reverse("signup"),
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "password1": "s3cret-long-pass",
            "password2": "s3cret-long-pass",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert not user.is_staff


def test_operator_deactivates_users_in_the_admin(operator_client, owner, operator) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:mailpanel_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [owner.pk, operator.pk]},
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    operator.refresh_from_db()
    assert owner.is_active is False
    assert operator.is_active is True  # an operator cannot lock themselves out
    assert site.is_registered(User)


def test_operator_creates_a_user_in_the_admin(operator_client) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:mailpanel_user_add"),
        {
            "username": "fresh",
            "password1": "fresh-long-pass-2026",
            "password2": "fresh-long-pass-2026",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    assert User.objects.filter(username="fresh").exists()


def test_navigation_shows_operator_links_only_to_operators(owner_client, client, operator) -> None:  # noqa: ANN001
    assert b'href="/outbox/"' not in owner_client.get(reverse("home")).content
    client.force_login(operator)
    assert b'href="/outbox/"' in client.get(reverse("home")).content
