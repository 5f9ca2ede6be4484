from __future__ import annotations

from django.urls import reverse


def test_panel_pages_carry_security_headers(owner_client) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("home"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_scripts(owner_client, client, db) -> None:  # noqa: ANN001
    for response in (owner_client.get(reverse("home")), client.get(reverse("login"))):
        html = response.content.decode()
        for chunk in html.split("<script")[1:]:
            assert chunk.lstrip().startswith("src="), chunk[:80]


def test_login_page_is_public_and_framed_by_nobody(client, db) -> None:  # noqa: ANN001
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
