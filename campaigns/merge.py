"""The merge engine: a restricted Django template language, compiled once per
campaign into literal chunks and slots so that merging one recipient only joins
strings.

Context (plain strings and dicts only, never model objects)::

    {"subscriber": {"name", "email", "fields": {...}}, "list": {"name"},
     "campaign": {"subject"}, "sender": {"address"},
     "unsubscribe_url", "preferences_url", "web_version_url"}

``sender.address`` is the postal address of the recipient's list, else of the account,
on one line; the frozen campaign holds it per list, so a recipient costs a dict lookup.

``tracking.l<N>`` and ``tracking.open`` are reserved: freezing writes them into the
document for tracked links and the open pixel.

Templates made only of text and ``{{ variables|filters }}`` take the fast path; one
that uses a block tag (``{% if %}``, ``{% for %}``...) is rendered by the engine
for each recipient (correct, about 50 times slower).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.template import Context, Library, Template, TemplateSyntaxError
from django.template import defaultfilters as df
from django.template import defaulttags as dt
from django.template.base import FilterExpression, Node, TextNode, VariableNode
from django.template.engine import Engine
from django.utils.safestring import SafeData

ALLOWED_TAGS = {"if": dt.do_if, "for": dt.do_for, "with": dt.do_with, "comment": dt.comment}
# "safe" is not here on purpose: a subscriber's value must never become markup.
ALLOWED_FILTERS = (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "truncatechars",
    "truncatewords",
    "urlencode",
    "yesno",
    "length",
    "floatformat",
    "date",
    "first",
    "last",
    "join",
    "linebreaksbr",
    "pluralize",
    "wordcount",
    "cut",
    "slugify",
    "striptags",
)
# Root names a template may read, and the keys under them (None: any key).
ALLOWED_VARIABLES: dict[str, dict[str, Any] | None] = {
    "subscriber": {"name": None, "email": None, "fields": "any"},
    "list": {"name": None},
    "campaign": {"subject": None},
    "sender": {"address": None},
    "unsubscribe_url": None,
    "preferences_url": None,
    "web_version_url": None,
    "tracking": "any",
}

register = Library()
for _name, _compile in ALLOWED_TAGS.items():
    register.tag(_name, _compile)
for _name in ALLOWED_FILTERS:
    register.filters[_name] = df.register.filters[_name]


class _RestrictedEngine(Engine):
    # Engine adds Django's default tags (load, include, debug, ssi...) through
    # default_builtins; this engine has none of them.
    default_builtins: list[str] = []

    def __init__(self) -> None:
        super().__init__(loaders=[], libraries={}, builtins=[], autoescape=True)
        self.template_builtins = [register]
        self.template_libraries = {}


ENGINE = _RestrictedEngine()


class MergeError(ValueError):
    """A problem in merge tags: ``errors`` holds one message per problem, with its line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


_UNKNOWN_TAG = re.compile(r"Invalid block tag on line (\d+): '([^']+)'")
_UNKNOWN_FILTER = re.compile(r"Invalid filter: '([^']+)'")


def _describe_syntax_error(exc: TemplateSyntaxError, where: str) -> str:
    message = str(exc)
    token = getattr(exc, "token", None)
    line = token.lineno if token is not None else None
    tag = _UNKNOWN_TAG.match(message)
    if tag:
        return f"{where}, line {tag.group(1)}: the tag {{% {tag.group(2)} %}} is not allowed."
    unknown_filter = _UNKNOWN_FILTER.match(message)
    if unknown_filter:
        return f"{where}, line {line}: the filter |{unknown_filter.group(1)} is not allowed."
    return f"{where}, line {line}: {message}"


def parse(source: str, where: str = "Body") -> Template:
    """The compiled template; raises MergeError naming each problem and its line."""
    try:
        template = Template(source, engine=ENGINE)
    except TemplateSyntaxError as exc:
        raise MergeError([_describe_syntax_error(exc, where)]) from None
    errors = _check_variables(template, where)
    if errors:
        raise MergeError(errors)
    return template


def check(source: str, where: str = "Body") -> list[str]:
    """The problems in a template source, empty when it merges cleanly."""
    try:
        parse(source, where)
    except MergeError as exc:
        return exc.errors
    return []


def _names_bound(template: Template) -> set[str]:
    bound = {"forloop"}
    for node in template.nodelist.get_nodes_by_type(dt.ForNode):
        bound.update(node.loopvars)
    for node in template.nodelist.get_nodes_by_type(dt.WithNode):
        bound.update(node.extra_context)
    return bound


def _expressions(template: Template) -> list[tuple[FilterExpression, int]]:
    found = []
    for node in template.nodelist.get_nodes_by_type(VariableNode):
        found.append((node.filter_expression, node.token.lineno))
    for node in template.nodelist.get_nodes_by_type(dt.ForNode):
        found.append((node.sequence, node.token.lineno))
    for node in template.nodelist.get_nodes_by_type(dt.WithNode):
        found.extend((value, node.token.lineno) for value in node.extra_context.values())
    return found


def _variable_allowed(lookups: tuple[str, ...], bound: set[str]) -> bool:
    if lookups[0] in bound:
        return True
    allowed: Any = ALLOWED_VARIABLES
    for key in lookups:
        if allowed == "any":
            return True
        if not isinstance(allowed, dict) or key not in allowed:
            return False
        allowed = allowed[key]
    return True


def _check_variables(template: Template, where: str) -> list[str]:
    bound = _names_bound(template)
    errors = []
    for expression, line in _expressions(template):
        variables = [expression.var] + [arg for _f, args in expression.filters for _l, arg in args]
        for var in variables:
            lookups = getattr(var, "lookups", None)
            if lookups and not _variable_allowed(lookups, bound):
                name = ".".join(lookups)
                errors.append(f"{where}, line {line}: unknown merge tag {{{{ {name} }}}}.")
    return errors


# --- Compilation into chunks and slots ------------------------------------------------------

Slot = Callable[[dict], str]
# Builds a slot for some variables itself (the tracking URLs), or returns None.
SpecialSlots = Callable[[tuple[str, ...]], "Slot | None"]


def _lookup(lookups: tuple[str, ...]) -> Callable[[dict], Any]:
    if len(lookups) == 1:
        (a,) = lookups
        return lambda c: c.get(a, "")
    if len(lookups) == 2:
        a, b = lookups

        def get2(c: dict) -> Any:
            v = c.get(a)
            return v.get(b, "") if isinstance(v, dict) else ""

        return get2

    def get(c: dict) -> Any:
        v: Any = c
        for key in lookups:
            if not isinstance(v, dict):
                return ""
            v = v.get(key, "")
        return v

    return get


def _argument(lookup: bool, arg: Any) -> Callable[[dict], Any]:
    if not lookup:
        return lambda c: arg
    if arg.literal is not None:
        literal = arg.literal
        return lambda c: literal
    return _lookup(tuple(arg.lookups))


def _to_text(value: Any) -> str:
    if value is None:
        return "None"
    return value if isinstance(value, str) else str(value)


def _slot(
    expression: FilterExpression, autoescape: bool, special: SpecialSlots | None = None
) -> Slot:
    var = expression.var
    if special is not None and not expression.filters and getattr(var, "lookups", None):
        slot = special(tuple(var.lookups))
        if slot is not None:
            return slot
    if isinstance(var, str):  # a quoted literal: {{ "x" }}
        getter: Callable[[dict], Any] = lambda c, v=var: v  # noqa: E731
    elif var.literal is not None:
        getter = lambda c, v=var.literal: v  # noqa: E731
    else:
        getter = _lookup(tuple(var.lookups))
    escape = html.escape
    filters = [
        (
            func,
            [_argument(lookup, arg) for lookup, arg in args],
            bool(getattr(func, "needs_autoescape", False)),
        )
        for func, args in expression.filters
    ]
    if not filters:
        if autoescape:
            return lambda c: escape(_to_text(getter(c)))
        return lambda c: _to_text(getter(c))
    if len(expression.filters) == 1 and expression.filters[0][0] is df.default:
        # The most common tag ({{ x|default:"y" }}) without the generic loop.
        fallback = _argument(*expression.filters[0][1][0])

        def render_default(c: dict) -> str:
            value = getter(c)
            if not value:
                value = fallback(c)
            text = _to_text(value)
            if autoescape and not isinstance(value, SafeData):
                return escape(text)
            return text

        return render_default

    def render(c: dict) -> str:
        value = getter(c)
        for func, args, needs_autoescape in filters:
            values = [a(c) for a in args]
            if needs_autoescape:
                value = func(value, *values, autoescape=autoescape)
            else:
                value = func(value, *values)
        text = _to_text(value)
        if autoescape and not isinstance(value, SafeData):
            return escape(text)
        return text

    # Filters with literal arguments that Django marks safe (default:"x") keep the
    # literal unescaped, as Django does.
    return render


@dataclass
class Compiled:
    """A compiled template: ``literals`` interleaved with ``slots``, or a slow template."""

    literals: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    template: Template | None = None
    autoescape: bool = True
    names: set[str] = field(default_factory=set)
    # With tracking slots (links, the open pixel), which depend on the token only: the
    # text around them in runs joined by the token in one C-level join (``tracked``),
    # and, for an empty token, the links as written folded into the text (``untracked``).
    # A 100 KB newsletter has hundreds of tracked links; one call each would dominate.
    tracked: list[list[str]] | None = None
    untracked: list[str] | None = None
    other_slots: list[Slot] = field(default_factory=list)

    def render(self, context: dict) -> str:
        if self.template is not None:
            return self.template.render(Context(context, autoescape=self.autoescape))
        if self.tracked is not None:
            return self._render_folded(context)
        literals = self.literals
        if not self.slots:
            return literals[0]
        parts = [""] * (2 * len(self.slots) + 1)
        parts[::2] = literals
        parts[1::2] = [slot(context) for slot in self.slots]
        return "".join(parts)

    def _render_folded(self, context: dict) -> str:
        token = context.get("tracking_token")
        texts = [token.join(run) for run in self.tracked] if token else self.untracked
        if not self.other_slots:
            return texts[0]
        parts = [""] * (2 * len(self.other_slots) + 1)
        parts[::2] = texts
        parts[1::2] = [slot(context) for slot in self.other_slots]
        return "".join(parts)


def _fold_tracking(compiled: Compiled) -> None:
    """Fills ``tracked``/``untracked`` when the template has tracking slots."""
    if not any(hasattr(slot, "token_parts") for slot in compiled.slots):
        return
    literals = compiled.literals
    tracked, untracked, others = [[literals[0]]], [literals[0]], []
    for slot, literal in zip(compiled.slots, literals[1:], strict=True):
        parts = getattr(slot, "token_parts", None)
        if parts is None:
            others.append(slot)
            tracked.append([literal])
            untracked.append(literal)
            continue
        prefix, suffix, as_written = parts
        tracked[-1][-1] += prefix
        tracked[-1].append(suffix + literal)
        untracked[-1] += as_written + literal
    compiled.tracked, compiled.untracked, compiled.other_slots = tracked, untracked, others


def compile_template(
    source: str,
    autoescape: bool = True,
    where: str = "Body",
    special: SpecialSlots | None = None,
) -> Compiled:
    """Compiles a source for merging; raises MergeError as ``parse`` does."""
    template = parse(source, where)
    nodes: list[Node] = list(template.nodelist)
    names = {
        ".".join(expr.var.lookups)
        for expr, _line in _expressions(template)
        if getattr(expr.var, "lookups", None)
    }
    if not all(type(node) in (TextNode, VariableNode) for node in nodes):
        return Compiled(template=template, autoescape=autoescape, names=names)
    literals, slots, pending = [], [], []
    for node in nodes:
        if isinstance(node, TextNode):
            pending.append(node.s)
        else:
            literals.append("".join(pending))
            pending = []
            slots.append(_slot(node.filter_expression, autoescape, special))
    literals.append("".join(pending))
    compiled = Compiled(literals=literals, slots=slots, autoescape=autoescape, names=names)
    _fold_tracking(compiled)
    return compiled


def render_once(source: str, context: dict, autoescape: bool = True) -> str:
    """Renders a source for one context (previews); raises MergeError."""
    return compile_template(source, autoescape).render(context)


# --- The frozen campaign, for the sending engine ---------------------------------------------

# A 1x1 transparent GIF: the open pixel where nothing is tracked (web version, previews).
BLANK_PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


@dataclass
class FrozenCampaign:
    """What merging needs, loaded once per process per frozen campaign."""

    campaign_id: int
    campaign_uuid: str
    frozen_at: Any
    subject: Compiled
    html: Compiled
    text: Compiled
    links: list[str]
    # MIME parts (headers and base64 body, CRLF) of the attachments, made at freeze.
    attachments: list[bytes]
    from_name: str
    from_email: str
    reply_to: str
    base_context: dict
    names: set[str]
    urls: Any = None
    # The web version link carries the recipient's tracking token (?t=): opening it
    # counts as an open. Only when opens are tracked and the message has that link.
    web_version_tracked: bool = False
    # {"address": ...} per list id, and the account's for any other list; None when no
    # part of the campaign uses {{ sender.address }}.
    senders: dict[int, dict] | None = None
    default_sender: dict = field(default_factory=dict)

    @property
    def needs_tracking(self) -> bool:
        return any(name.startswith("tracking.") for name in self.names)


def _token_slot(prefix: str, suffix: str, as_written: str) -> Slot:
    """prefix + token + suffix, or ``as_written`` without a token; ``token_parts`` lets
    Compiled fold it into the text around it (_fold_tracking)."""

    def slot(c: dict) -> str:
        return prefix + t + suffix if (t := c.get("tracking_token")) else as_written

    slot.token_parts = (prefix, suffix, as_written)  # type: ignore[attr-defined]
    return slot


def _tracking_slots(links: list[str]) -> SpecialSlots:
    from campaigns import links as signed_links

    click, opened = signed_links.click_url_prefix(), signed_links.open_url_prefix()
    escape = html.escape

    def special(lookups: tuple[str, ...]) -> Slot | None:
        if lookups[0] != "tracking" or len(lookups) != 2:
            return None
        if lookups[1] == "open":
            return _token_slot(opened, "", BLANK_PIXEL)
        index = int(lookups[1][1:])
        return _token_slot(click, f"/{index}", escape(links[index - 1]))

    return special


@dataclass(frozen=True)
class PostalAddresses:
    """The sender's postal address: the account's, and the lists' that override it."""

    account: str = ""
    by_list: dict[int, str] = field(default_factory=dict)

    def for_list(self, list_id: int) -> str:
        return self.by_list.get(list_id) or self.account


def one_line(address: str) -> str:
    """A postal address as one line ("Org · Street 1 · 1000 City"): it fits the footer,
    the text part and the subject alike, and can never break a header."""
    return " · ".join(line.strip() for line in address.splitlines() if line.strip())


def postal_addresses(campaign: Any) -> PostalAddresses:
    """The addresses ``{{ sender.address }}`` takes for the campaign's lists (two queries)."""
    from django.contrib.auth import get_user_model

    from lists.models import MailingList

    account = (
        get_user_model()
        .objects.filter(pk=campaign.account_id)
        .values_list("postal_address", flat=True)
        .first()
    )
    rows = (
        MailingList.objects.filter(campaigns=campaign.pk).values_list("id", "postal_address")
        if campaign.pk
        else []
    )
    return PostalAddresses(
        account=one_line(account or ""),
        by_list={list_id: one_line(text) for list_id, text in rows if one_line(text)},
    )


def _sender_values(
    names: set[str], addresses: PostalAddresses | None
) -> tuple[dict[int, dict] | None, dict]:
    if "sender.address" not in names:
        return None, {}
    addresses = addresses or PostalAddresses()
    by_list = {list_id: {"address": a} for list_id, a in addresses.by_list.items()}
    return by_list, {"address": addresses.account}


def build_frozen(
    campaign: Any,
    links: list[str],
    attachments: list[bytes],
    addresses: PostalAddresses | None = None,
) -> FrozenCampaign:
    """The compiled campaign; ``addresses`` fills {{ sender.address }} (empty if None)."""
    from campaigns import links as signed_links

    special = _tracking_slots(links)
    subject = compile_template(campaign.frozen_subject, autoescape=False, where="Subject")
    body = compile_template(campaign.frozen_html, special=special)
    text = compile_template(campaign.frozen_text, autoescape=False, where="Text part")
    if body.template is not None:
        # The slow path renders tracking.* through the context: give it a dict.
        body.names.add("tracking.slow")
    names = subject.names | body.names | text.names
    senders, default_sender = _sender_values(names, addresses)
    return FrozenCampaign(
        campaign_id=campaign.pk,
        campaign_uuid=campaign.uuid.hex,
        frozen_at=campaign.frozen_at,
        subject=subject,
        html=body,
        text=text,
        links=links,
        attachments=attachments,
        from_name=campaign.from_name,
        from_email=campaign.from_email,
        reply_to=campaign.reply_to,
        base_context={
            "campaign": {"subject": campaign.frozen_subject},
            "web_version_url": signed_links.web_version_url(campaign.uuid.hex),
        },
        names=names,
        urls=signed_links.UrlMaker(campaign.pk),
        web_version_tracked="tracking.open" in body.names and "web_version_url" in names,
        senders=senders,
        default_sender=default_sender,
    )


_FROZEN: dict[int, FrozenCampaign] = {}


def load_frozen(campaign: Any) -> FrozenCampaign:
    """The compiled frozen campaign, cached per process until it is frozen again."""
    cached = _FROZEN.get(campaign.pk)
    if cached is not None and cached.frozen_at == campaign.frozen_at:
        return cached
    if campaign.frozen_at is None:
        raise ValueError(f"campaign {campaign.pk} is not frozen")
    from campaigns.models import Attachment, Link

    links = list(
        Link.objects.filter(campaign=campaign).order_by("index").values_list("url", flat=True)
    )
    parts = [
        bytes(part)
        for part in Attachment.objects.filter(campaign=campaign)
        .order_by("created_at", "id")
        .values_list("encoded_part", flat=True)
        if part is not None
    ]
    frozen = build_frozen(campaign, links, parts)
    if frozen.senders is not None:
        frozen.senders, frozen.default_sender = _sender_values(
            frozen.names, postal_addresses(campaign)
        )
    _FROZEN[campaign.pk] = frozen
    return frozen


def _slow_tracking(frozen: FrozenCampaign, token: str | None) -> dict:
    from campaigns import links as signed_links

    if not token:
        urls = {f"l{i}": url for i, url in enumerate(frozen.links, start=1)}
        return {**urls, "open": BLANK_PIXEL}
    click = signed_links.click_url_prefix() + token
    urls = {f"l{i}": f"{click}/{i}" for i in range(1, len(frozen.links) + 1)}
    return {**urls, "open": signed_links.open_url_prefix() + token}


def merge(frozen: FrozenCampaign, recipient: dict) -> tuple[str, str, str]:
    """(subject, html, text) for one recipient.

    ``recipient`` holds plain values: ``subscriber`` ({id, name, email, fields}) and
    ``list`` ({id, name}: the list the recipient is sent for), and optionally
    ``tracking_token`` (else made from ``recipient_id``, the delivery id, or the
    subscriber id; an empty token leaves links as written), ``unsubscribe_url`` and
    ``preferences_url`` (else made from the subscriber and list ids).
    """
    context = {**frozen.base_context, **recipient}
    names = frozen.names
    urls = frozen.urls
    if "tracking_token" not in recipient and frozen.needs_tracking:
        who = recipient.get("recipient_id") or recipient["subscriber"]["id"]
        context["tracking_token"] = urls.tracking_token(who)
    if frozen.web_version_tracked and (token := context.get("tracking_token")):
        context["web_version_url"] = f"{frozen.base_context['web_version_url']}?t={token}"
    if frozen.senders is not None and "sender" not in recipient:
        context["sender"] = frozen.senders.get(recipient["list"]["id"], frozen.default_sender)
    if "unsubscribe_url" not in recipient and "unsubscribe_url" in names:
        context["unsubscribe_url"] = urls.unsubscribe_url(
            recipient["subscriber"]["id"], recipient["list"]["id"]
        )
    if "preferences_url" not in recipient and "preferences_url" in names:
        context["preferences_url"] = urls.preferences_url(recipient["subscriber"]["id"])
    if frozen.html.template is not None:
        context["tracking"] = _slow_tracking(frozen, context.get("tracking_token"))
    subject = frozen.subject.render(context)
    if "\r" in subject or "\n" in subject:
        # A merge value can never add a header: no line break survives in the subject.
        subject = " ".join(subject.splitlines())
    return subject, frozen.html.render(context), frozen.text.render(context)
