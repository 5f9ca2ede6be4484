"""The merge engine: tags, defaults, errors with lines, and what merge values cannot do."""

from __future__ import annotations

import pytest

from campaigns import merge

SUBSCRIBER = {"id": 7, "name": "Ada", "email": "ada@example.org", "fields": {"city": "Aarhus"}}
CONTEXT = {
    "subscriber": SUBSCRIBER,
    "list": {"id": 3, "name": "Weekly"},
    "campaign": {"subject": "News"},
    "unsubscribe_url": "https://mp.example/u/1/",
    "preferences_url": "https://mp.example/p/1/",
    "web_version_url": "https://mp.example/c/1/",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ subscriber.name }}", "Ada"),
        ("{{ subscriber.email }}", "ada@example.org"),
        ("{{ subscriber.fields.city }}", "Aarhus"),
        ("{{ list.name }}", "Weekly"),
        ("{{ campaign.subject }}", "News"),
        ("{{ unsubscribe_url }}", "https://mp.example/u/1/"),
        ("{{ preferences_url }}", "https://mp.example/p/1/"),
        ("{{ web_version_url }}", "https://mp.example/c/1/"),
        ("{{ subscriber.name|upper }}", "ADA"),
        ("{{ subscriber.fields.city|lower }}", "aarhus"),
        ("{{ subscriber.fields.missing|default:'none' }}", "none"),
        ("{% if subscriber.fields.city %}in {{ subscriber.fields.city }}{% endif %}", "in Aarhus"),
        ("{% for x in subscriber.fields.tags %}{{ x }}{% endfor %}", ""),
        ("{% with n=subscriber.name %}{{ n|title }}{% endwith %}", "Ada"),
    ],
)
def test_every_tag_merges(source: str, expected: str) -> None:
    assert merge.render_once(source, CONTEXT) == expected


def test_default_fills_an_empty_name() -> None:
    compiled = merge.compile_template('Hi {{ subscriber.name|default:"friend" }}!')
    assert compiled.render({"subscriber": {"name": ""}}) == "Hi friend!"
    assert compiled.render({"subscriber": {}}) == "Hi friend!"
    assert compiled.render({"subscriber": {"name": "Bo"}}) == "Hi Bo!"


def test_fast_path_matches_the_django_engine() -> None:
    source = (
        'A {{ subscriber.name|default:"x"|upper }} B {{ subscriber.fields.city|truncatechars:4 }}'
        " C {{ subscriber.email }} <{{ list.name|lower }}>"
    )
    fast = merge.compile_template(source)
    assert fast.template is None
    slow = merge.compile_template("{% if 1 %}" + source + "{% endif %}")
    assert slow.template is not None
    values = dict(CONTEXT, subscriber={"name": "<b>&", "email": "a@b", "fields": {"city": "Kø"}})
    assert fast.render(values) == slow.render(values)
    assert "&lt;B&gt;&amp;" in fast.render(values)


def test_unknown_tag_is_named_with_its_line() -> None:
    errors = merge.check("Hello\nthere\n{% lorem %}")
    assert errors == ["Body, line 3: the tag {% lorem %} is not allowed."]


def test_unknown_variable_is_named_with_its_line() -> None:
    errors = merge.check("Hi\n{{ subscriber.password }}", where="Subject")
    assert errors == ["Subject, line 2: unknown merge tag {{ subscriber.password }}."]


def test_syntax_error_names_the_line() -> None:
    (error,) = merge.check("one\ntwo {% if subscriber.name %}")
    assert error.startswith("Body, line 2:")
    assert "endif" in error


@pytest.mark.parametrize(
    "source",
    [
        "{% load static %}",
        "{% debug %}",
        '{% include "base.html" %}',
        '{% extends "base.html" %}',
        '{% ssi "/etc/passwd" %}',
        "{% csrf_token %}",
        '{% url "admin:index" %}',
        "{{ subscriber.name|safe }}",
        "{{ subscriber.name|pprint }}",
    ],
)
def test_forbidden_tags_and_filters_are_refused(source: str) -> None:
    errors = merge.check(source)
    assert len(errors) == 1
    assert "not allowed" in errors[0]


def test_template_syntax_in_a_name_stays_text() -> None:
    evil = {"name": "{{ unsubscribe_url }}{% debug %}<script>x</script>", "email": "e@x"}
    html = merge.render_once("Hi {{ subscriber.name }}", {**CONTEXT, "subscriber": evil})
    assert html == "Hi {{ unsubscribe_url }}{% debug %}&lt;script&gt;x&lt;/script&gt;"
    text = merge.render_once("Hi {{ subscriber.name }}", {"subscriber": evil}, autoescape=False)
    assert text == "Hi {{ unsubscribe_url }}{% debug %}<script>x</script>"


def test_model_objects_are_not_reachable(owner) -> None:  # noqa: ANN001
    # The context only ever holds what the sender puts in; attribute access on a
    # non-dict value (even if one slipped in) gives nothing.
    compiled = merge.compile_template("{{ subscriber.email }}")
    assert compiled.render({"subscriber": owner}) == ""


def _frozen(
    subject: str, html: str = "<p>x</p>", text: str = "x", links: list[str] | None = None
) -> merge.FrozenCampaign:
    from types import SimpleNamespace
    from uuid import uuid4

    campaign = SimpleNamespace(
        pk=1,
        uuid=uuid4(),
        frozen_subject=subject,
        frozen_html=html,
        frozen_text=text,
        frozen_at=None,
        from_name="",
        from_email="",
        reply_to="",
    )
    return merge.build_frozen(campaign, links or ["https://example.com/a"], [])


def test_a_merge_value_cannot_break_the_subject_header() -> None:
    frozen = _frozen("News for {{ subscriber.name }}")
    attack = {"id": 1, "name": "Eve\r\nBcc: victim@example.org\nX: y", "email": "e@x"}
    subject, _html, _text = merge.merge(frozen, {"subscriber": attack, "list": {"id": 1}})
    assert "\r" not in subject and "\n" not in subject
    assert subject == "News for Eve Bcc: victim@example.org X: y"


def test_tracked_links_and_pixel_get_the_recipient_token() -> None:
    from django.core.signing import Signer

    frozen = _frozen("s", '<a href="{{ tracking.l1 }}">a</a><img src="{{ tracking.open }}">', "t")
    recipient = {"subscriber": {"id": 42, "name": "", "email": "x@y"}, "list": {"id": 1}}
    _s, html, _t = merge.merge(frozen, recipient)
    token = html.split("/t/c/")[1].split("/1")[0]
    assert Signer(salt="mailpanel.tracking").unsign(token) == "1.42"
    assert f"/t/o/{token}" in html


def test_without_a_token_links_stay_as_written() -> None:
    frozen = _frozen("s", '<a href="{{ tracking.l1 }}">a</a>', "t")
    recipient = {"subscriber": {"id": 1}, "list": {"id": 1}, "tracking_token": ""}
    assert merge.merge(frozen, recipient)[1] == '<a href="https://example.com/a">a</a>'


def test_unsubscribe_url_is_readable_by_the_public_pages() -> None:
    from mailpanel.lib import signing

    frozen = _frozen("s", '<a href="{{ unsubscribe_url }}">u</a> {{ preferences_url }}', "t")
    recipient = {"subscriber": {"id": 5, "email": "x@y"}, "list": {"id": 9}}
    html = merge.merge(frozen, recipient)[1]
    unsubscribe = html.split("/s/unsubscribe/")[1].split("/")[0]
    preferences = html.split("/s/preferences/")[1].split("/")[0]
    assert signing.read_unsubscribe_token(unsubscribe) == signing.UnsubscribeToken(5, 9, 1)
    assert signing.read_preference_token(preferences) == 5


@pytest.mark.parametrize("token", ["tok", ""])
def test_folded_tracking_links_render_as_one_slot_each_would(token: str) -> None:
    import dataclasses

    body = (
        '<a href="{{ tracking.l1 }}">{{ subscriber.name }}</a>{{ tracking.l2 }}{{ tracking.l1 }}'
        '<p>{{ subscriber.email }}</p><img src="{{ tracking.open }}">{{ tracking.l2 }}'
    )
    frozen = _frozen("s", body, "t", ["https://example.com/a", "https://example.com/b?x=1&y=2"])
    assert frozen.html.tracked is not None
    unfolded = dataclasses.replace(frozen.html, tracked=None, untracked=None)
    context = {"subscriber": {"name": "A<b>", "email": "a@x"}, "tracking_token": token}
    assert frozen.html.render(context) == unfolded.render(context)
