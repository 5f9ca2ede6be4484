"""ESP tracking webhooks (Amazon SES, Mailgun, SendGrid, Postmark) through django-anymail.

Anymail checks each post (Mailgun's HMAC signature, SNS's signature, basic auth for all) and
turns each event of it into an AnymailTrackingEvent; receive() maps each one to our bounce
classes and hands it to bounces.intake.record_provider_event(). A bad event, whether anymail
cannot convert it or we cannot record it, is quarantined and the rest of the batch still
applies: answering an error would make the ESP resend the whole batch. Replays (the same
provider event id) are recorded once by intake, and quarantined once.

"delivered" events are not bounces: they are counted in the statistics log (once per event id)
through intake.record_provider_delivery(). replay() runs a quarantined payload through the same
conversion and recording again, for the operators' "reprocess" after a fix.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.request import urlopen

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.base import AnymailBaseWebhookView, AnymailBasicAuthMixin
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone

from bounces import classify, intake, rules, sns
from bounces.parse import MAX_DIAGNOSTIC, REPLY_RE, STATUS_RE, RecipientResult

logger = logging.getLogger(__name__)

# anymail's esp_name -> our provider name (BounceEvent.provider).
PROVIDERS = {
    "Amazon SES": "ses",
    "Mailgun": "mailgun",
    "SendGrid": "sendgrid",
    "Postmark": "postmark",
}

# Events that say nothing about whether an address can receive mail. "delivered" is not a
# bounce either, but it is counted in the statistics log (record() handles it first).
IGNORED = {
    EventType.QUEUED, EventType.SENT, EventType.DELIVERED, EventType.OPENED,
    EventType.CLICKED, EventType.SUBSCRIBED,
}  # fmt: skip

# Postmark's bounce Type codes (postmarkapp.com/developer/api/bounce-api#bounce-types).
POSTMARK_TYPES = {
    1: None,  # HardBounce: the diagnostic decides between a dead address and a refusal
    2: rules.SOFT,  # Transient
    16: rules.UNSUBSCRIBE_REQUEST,  # Unsubscribe
    32: rules.NOT_A_FAILURE,  # Subscribe
    64: rules.NOT_A_FAILURE,  # AutoResponder
    128: rules.NOT_A_FAILURE,  # AddressChange
    256: rules.SOFT,  # DnsError
    512: rules.SENDER_SIDE,  # SpamNotification: a filter took our message for spam
    1024: rules.NOT_A_FAILURE,  # OpenRelayTest
    2048: None,  # Unknown
    4096: rules.SOFT,  # SoftBounce
    8192: rules.SENDER_SIDE,  # VirusNotification
    16384: rules.NOT_A_FAILURE,  # ChallengeVerification
    100000: rules.HARD,  # BadEmailAddress
    100001: rules.COMPLAINT,  # SpamComplaint
    100002: rules.HARD,  # ManuallyDeactivated: Postmark will not send to it again
    100003: rules.SENDER_SIDE,  # Unconfirmed: our sender signature is not confirmed
    100006: rules.SENDER_SIDE,  # Blocked
    100007: rules.SENDER_SIDE,  # SMTPApiError
    100008: rules.NOT_A_FAILURE,  # InboundError
    100009: rules.SENDER_SIDE,  # DMARCPolicy
    100010: rules.SENDER_SIDE,  # TemplateRenderingFailed
}

# SES bounce sub-types that describe the message, not the address.
SES_SENDER_SIDE_SUBTYPES = {"ContentRejected", "AttachmentRejected"}
# SES drops these itself: the address bounced hard before (its suppression lists).
SES_SUPPRESSED_SUBTYPES = {"Suppressed", "OnAccountSuppressionList"}


@dataclass
class Outcome:
    bounce_class: str
    status_code: str = ""
    reply_code: str = ""
    diagnostic: str = ""


def receive(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's tracking signal: record one event, or quarantine it; never raise."""
    provider = provider_name(esp_name)
    try:
        # A savepoint: a failed insert must not spoil the transaction of the next event.
        with transaction.atomic():
            record(provider, event)
    except Exception as exc:  # any fault in one event: keep it for an operator, go on
        logger.exception("%s webhook event %s quarantined", provider, event.event_id)
        intake.quarantine(
            payload(event).encode(),
            source="webhook",
            provider=provider,
            reason=_describe(exc),
            # A replay of the same bad event is kept once.
            event_id=_event_id(provider, event),
        )


def record(provider: str, event: AnymailTrackingEvent) -> object | None:
    """Record one event: a bounce event, or a delivery counted in the statistics log.

    Returns what was stored; None when the event is neither or is a replay. Raises for an
    event that cannot be recorded (the caller quarantines it).
    """
    if event.event_type == EventType.DELIVERED:
        return _record_delivery(provider, event)
    outcome = normalise(provider, event)
    if outcome is None:
        return None
    if not event.recipient:
        raise ValueError(f"{event.event_type} event without a recipient")
    if outcome.bounce_class not in rules.CLASSES:
        # Raised, not handed on: intake would quarantine it and answer None like a replay,
        # and a reprocess must tell the two apart.
        raise ValueError(f"unknown bounce class {outcome.bounce_class!r}")
    return intake.record_provider_event(
        provider=provider,
        event_id=_event_id(provider, event),
        recipient=event.recipient,
        bounce_class=outcome.bounce_class,
        status_code=outcome.status_code,
        reply_code=outcome.reply_code,
        diagnostic=outcome.diagnostic,
        message_id=_message_id(event),
        payload=payload(event),
        occurred_at=event.timestamp or timezone.now(),
    )


def _record_delivery(provider: str, event: AnymailTrackingEvent) -> object | None:
    if not event.recipient:
        raise ValueError(f"{event.event_type} event without a recipient")
    return intake.record_provider_delivery(
        provider=provider,
        event_id=_event_id(provider, event),
        recipient=event.recipient,
        message_id=_message_id(event),
        occurred_at=event.timestamp or timezone.now(),
    )


def normalise(provider: str, event: AnymailTrackingEvent) -> Outcome | None:
    """Our bounce class and codes for an event; None for events that are not bounces."""
    if event.event_type in IGNORED:
        return None
    by_provider = {"ses": _ses, "mailgun": _mailgun, "sendgrid": _sendgrid, "postmark": _postmark}
    special = by_provider.get(provider)
    outcome = special(event) if special else None
    return outcome or _by_event_type(event)


def _by_event_type(event: AnymailTrackingEvent) -> Outcome | None:
    diagnostic = _diagnostic(event)
    if event.event_type == EventType.COMPLAINED:
        return Outcome(rules.COMPLAINT, diagnostic=diagnostic)
    if event.event_type == EventType.UNSUBSCRIBED:
        return Outcome(rules.UNSUBSCRIBE_REQUEST, diagnostic=diagnostic)
    if event.event_type == EventType.DEFERRED:
        # The ESP is still retrying: a delay, like a "delayed" DSN.
        return Outcome(rules.NOT_A_FAILURE, *_codes(diagnostic), diagnostic=diagnostic)
    if event.event_type in (EventType.BOUNCED, EventType.REJECTED, EventType.FAILED):
        return _classified(diagnostic, default=rules.HARD)
    raise ValueError(f"unexpected event type {event.event_type!r}")


def _classified(diagnostic: str, default: str, status: str = "", reply: str = "") -> Outcome:
    """Our own classification of a failure's status code and text (bounces.classify)."""
    found_status, found_reply = _codes(diagnostic)
    status, reply = status or found_status, reply or found_reply
    if not (status or reply or diagnostic):
        return Outcome(default)
    result = RecipientResult(
        action="failed", status=status, reply_code=reply, diagnostic=diagnostic
    )
    bounce_class = classify.classify(result)
    # classify() falls back to soft when nothing matches; the ESP's own verdict knows more.
    if bounce_class == rules.SOFT and not _is_temporary(status, reply) and default == rules.HARD:
        bounce_class = classify.classify_text(diagnostic) or default
    return Outcome(bounce_class, status, reply, diagnostic)


def _is_temporary(status: str, reply: str) -> bool:
    return status.startswith("4") or reply.startswith("4")


def _codes(text: str) -> tuple[str, str]:
    status = STATUS_RE.search(text or "")
    reply = REPLY_RE.search(text or "")
    return (".".join(status.groups()) if status else "", reply.group(1) if reply else "")


def _diagnostic(event: AnymailTrackingEvent) -> str:
    parts = [p for p in (event.mta_response, event.description) if p]
    return _clip(" ".join(dict.fromkeys(str(p) for p in parts)))


def _clip(text: object) -> str:
    # Every provider's text is cut before any pattern reads it, as parsed DSNs are: a
    # megabyte of "diagnostic" would otherwise cost the classifier minutes.
    return str(text or "")[:MAX_DIAGNOSTIC]


def _ses(event: AnymailTrackingEvent) -> Outcome | None:
    ses = event.esp_event or {}
    kind = ses.get("eventType") or ses.get("notificationType")
    if kind != "Bounce":
        if kind == "Reject":
            # SES refused to send the message at all (a virus): nothing about the address.
            return Outcome(rules.SENDER_SIDE, diagnostic=_diagnostic(event))
        return None
    bounce = ses.get("bounce", {})
    mine = next(
        (
            r
            for r in bounce.get("bouncedRecipients", [])
            if r.get("emailAddress") == event.recipient
        ),
        {},
    )
    diagnostic = _clip(mine.get("diagnosticCode") or event.description)
    status = mine.get("status") or ""
    bounce_type, subtype = bounce.get("bounceType"), bounce.get("bounceSubType")
    if subtype in SES_SENDER_SIDE_SUBTYPES:
        return Outcome(rules.SENDER_SIDE, status, _codes(diagnostic)[1], diagnostic)
    if bounce_type == "Permanent":
        if subtype in SES_SUPPRESSED_SUBTYPES:
            return Outcome(rules.HARD, status, "", diagnostic)
        # "Permanent" also covers refusals of the sender (5.7.x): the diagnostic decides.
        return _classified(diagnostic, default=rules.HARD, status=status)
    # Transient and Undetermined: SES itself gave up for now.
    return Outcome(rules.SOFT, status, _codes(diagnostic)[1], diagnostic)


def _mailgun(event: AnymailTrackingEvent) -> Outcome | None:
    # anymail passes the whole post: {"signature": ..., "event-data": ...}.
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    data = esp_event.get("event-data") or {}
    if data.get("event") != "failed":
        return None
    status = data.get("delivery-status") or {}
    diagnostic = _clip(
        " ".join(str(p) for p in (status.get("message"), status.get("description")) if p)
    ) or _diagnostic(event)
    code = str(status.get("code") or "")
    reply = code if re.fullmatch(r"[245]\d\d", code) else ""
    enhanced = str(status.get("enhanced-code") or "")
    if data.get("severity") == "temporary":
        return Outcome(rules.SOFT, enhanced or _codes(diagnostic)[0], reply, diagnostic)
    reason = data.get("reason")
    if reason == "suppress-bounce":
        return Outcome(rules.HARD, enhanced, reply, diagnostic)
    if reason == "suppress-complaint":
        return Outcome(rules.COMPLAINT, diagnostic=diagnostic)
    if reason == "suppress-unsubscribe":
        return Outcome(rules.UNSUBSCRIBE_REQUEST, diagnostic=diagnostic)
    if reason == "espblock":
        return Outcome(rules.SENDER_SIDE, enhanced, reply, diagnostic)
    return _classified(diagnostic, default=rules.HARD, status=enhanced, reply=reply)


# SendGrid's "dropped" reasons that name the address's history, not this message.
SENDGRID_DROPPED = {
    "bounced address": rules.HARD,
    "invalid": rules.HARD,
    "invalid smtpapi header": rules.SENDER_SIDE,
    "spam reporting address": rules.COMPLAINT,
    "unsubscribed address": rules.UNSUBSCRIBE_REQUEST,
    "spam content (if spam checker app enabled)": rules.SENDER_SIDE,
}


def _sendgrid(event: AnymailTrackingEvent) -> Outcome | None:
    data = event.esp_event or {}
    kind = data.get("event")
    diagnostic = _clip(data.get("reason") or data.get("response"))
    status = str(data.get("status") or "")
    if kind == "bounce":
        if data.get("type") == "blocked":
            # Refused for who sent it (reputation, block list, policy), not for the address.
            return Outcome(rules.SENDER_SIDE, status, _codes(diagnostic)[1], diagnostic)
        return _classified(diagnostic, default=rules.HARD, status=status)
    if kind == "dropped":
        bounce_class = SENDGRID_DROPPED.get(diagnostic.lower(), rules.SENDER_SIDE)
        return Outcome(bounce_class, diagnostic=diagnostic)
    return None


def _postmark(event: AnymailTrackingEvent) -> Outcome | None:
    data = event.esp_event or {}
    if data.get("RecordType", "Bounce") != "Bounce" or "TypeCode" not in data:
        return None
    diagnostic = _clip(
        " ".join(str(p) for p in (data.get("Details"), data.get("Description")) if p)
    ) or _diagnostic(event)
    bounce_class = POSTMARK_TYPES.get(int(data["TypeCode"]))
    if bounce_class is None:
        default = rules.HARD if int(data["TypeCode"]) == 1 else rules.SOFT
        return _classified(diagnostic, default=default)
    return Outcome(bounce_class, *_codes(diagnostic), diagnostic=diagnostic)


def _event_id(provider: str, event: AnymailTrackingEvent) -> str:
    event_id = str(event.event_id or "")
    if provider == "ses" and event_id:
        # One SNS notification carries every recipient of a bounce: the id is shared.
        event_id = f"{event_id}:{event.recipient}"
    if not event_id and event.event_type == EventType.DELIVERED and event.recipient:
        # Postmark's Delivery webhook has no event id; a message is delivered to one
        # recipient once, so the message and the recipient name the event.
        message_id = _message_id(event)
        if message_id:
            event_id = f"delivered:{message_id}:{event.recipient}"
    return event_id[:255]


def _message_id(event: AnymailTrackingEvent) -> str:
    if event.message_id:
        return str(event.message_id)
    data = event.esp_event if isinstance(event.esp_event, dict) else {}
    headers = (data.get("message") or {}).get("headers") or {}
    return str(headers.get("message-id") or "")


def payload(event: AnymailTrackingEvent) -> str:
    esp_event = event.esp_event
    if hasattr(esp_event, "lists"):  # a QueryDict (Mailgun's legacy form posts)
        esp_event = dict(esp_event.lists())
    return json.dumps(esp_event, default=str, sort_keys=True)


# Views. anymail checks the signature or the credentials; the body is then read here, one
# event at a time, so that nothing in a post that passed the check fails the post as a whole.

# SNS's first Notification after a topic is set up for SES event publishing: not an event.
SNS_TOPIC_VALIDATED = "Successfully validated SNS topic for Amazon SES event publishing."


class QuarantiningWebhookView:
    """A mixin for anymail's tracking views: a bad event is quarantined, the others apply.

    anymail's own post() converts the whole body before it sends any signal, so one odd
    event (a timestamp that is not a number, a null in SendGrid's array) raises out of the
    view: a 500, nothing applied, and the ESP resends the batch again and again. Here a failed
    check is still a 400; after it, each element is converted on its own, one that cannot be
    is quarantined with the reason (the whole body when it cannot be read at all), and the
    answer is 200. Subclasses say how a body splits into elements and an element into events.
    """

    esp_name: str
    signal: Any

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.check(request)
        provider = provider_name(self.esp_name)
        try:
            elements = self.elements(request)
        except AnymailWebhookValidationFailure:
            raise
        except Exception as exc:  # any fault reading the body: keep it whole for an operator
            logger.warning("%s webhook post quarantined: %s", provider, _describe(exc))
            _quarantine(provider, request.body, f"unreadable post: {_describe(exc)}")
            return HttpResponse()
        for element in elements:
            self.dispatch_element(provider, element)
        return HttpResponse()

    def check(self, request: HttpRequest) -> None:
        """Raises AnymailWebhookValidationFailure (a 400) unless the post is authentic."""
        # Credentials first: nothing of a post without them is read (SES would fetch a cert).
        AnymailBasicAuthMixin.validate_request(self, request)  # type: ignore[arg-type]
        try:
            self.run_validators(request)  # type: ignore[attr-defined]
        except AnymailWebhookValidationFailure:
            raise
        except Exception as exc:
            # A signature inside a body that cannot be read cannot be checked: refused.
            raise AnymailWebhookValidationFailure(f"unverifiable post: {_describe(exc)}") from exc

    def dispatch_element(self, provider: str, element: object) -> None:
        try:
            events = self.events_of(element)
        except Exception as exc:  # one unreadable event: keep it, the rest still apply
            logger.warning("%s webhook event quarantined: %s", provider, _describe(exc))
            _quarantine(
                provider,
                _raw(element),
                f"unreadable event: {_describe(exc)}",
                event_id=self.element_id(element),
            )
            return
        for event in events:
            self.signal.send(sender=self.__class__, event=event, esp_name=self.esp_name)

    def elements(self, request: HttpRequest) -> list[object]:
        raise NotImplementedError

    def events_of(self, element: object) -> list[AnymailTrackingEvent]:
        raise NotImplementedError

    def element_id(self, element: object) -> str:
        """The provider's id of an element that could not be converted, if it has one."""
        return ""

    def stored_elements(self, raw: bytes, event_id: str) -> list[object]:
        """The elements of a quarantined payload (see replay()): what the receiver kept is
        either one element or, when the post could not be split, the whole body."""
        raise NotImplementedError


class SendGridTrackingView(QuarantiningWebhookView, SendGridTrackingWebhookView):
    def elements(self, request: HttpRequest) -> list[object]:
        batch = json.loads(request.body.decode("utf-8"))
        if not isinstance(batch, list):
            raise ValueError(f"expected a JSON array of events, got {type(batch).__name__}")
        return batch

    def events_of(self, element: object) -> list[AnymailTrackingEvent]:
        return [self.esp_to_anymail_event(_object(element))]

    def element_id(self, element: object) -> str:
        return str(element.get("sg_event_id") or "") if isinstance(element, dict) else ""

    def stored_elements(self, raw: bytes, event_id: str) -> list[object]:
        data = json.loads(raw.decode("utf-8"))
        return data if isinstance(data, list) else [data]


class PostmarkTrackingView(QuarantiningWebhookView, PostmarkTrackingWebhookView):
    def elements(self, request: HttpRequest) -> list[object]:
        # Postmark posts one event per request.
        return [_object(json.loads(request.body.decode("utf-8")))]

    def events_of(self, element: object) -> list[AnymailTrackingEvent]:
        return [self.esp_to_anymail_event(_object(element))]

    def element_id(self, element: object) -> str:
        return str(element.get("ID") or "") if isinstance(element, dict) else ""

    def stored_elements(self, raw: bytes, event_id: str) -> list[object]:
        return [json.loads(raw.decode("utf-8"))]


class MailgunTrackingView(QuarantiningWebhookView, MailgunTrackingWebhookView):
    def elements(self, request: HttpRequest) -> list[object]:
        if request.content_type == "application/json":
            # One event per post; its signature block was read (so it is an object) and checked.
            return [json.loads(request.body.decode("utf-8"))]
        return [request.POST]  # the legacy form posts

    def events_of(self, element: object) -> list[AnymailTrackingEvent]:
        if isinstance(element, QueryDict):
            return [self.mailgun_legacy_to_anymail_event(element)]
        return [self.esp_to_anymail_event(_object(element))]

    def element_id(self, element: object) -> str:
        data = element.get("event-data") if isinstance(element, dict) else None
        return str(data.get("id") or "") if isinstance(data, dict) else ""

    def stored_elements(self, raw: bytes, event_id: str) -> list[object]:
        data = _object(json.loads(raw.decode("utf-8")))
        if "event-data" in data:
            return [data]
        # A legacy form post, kept as {field: [values]} (payload() and _raw()).
        form = QueryDict(mutable=True)
        for name, values in data.items():
            form.setlist(name, values if isinstance(values, list) else [values])
        return [form]


class SESTrackingView(QuarantiningWebhookView, AmazonSESTrackingWebhookView):
    """Anymail's SES view, with the SNS topic checked and subscriptions confirmed without boto3.

    Anymail confirms SNS subscriptions through boto3; a GET of the SubscribeURL is what SNS
    documents for HTTP endpoints, and spares the AWS SDK as a dependency.
    """

    def __init__(self, **kwargs: Any) -> None:
        # The parent's __init__ sets up boto3 clients, needed only for inbound mail from S3.
        self.auto_confirm_enabled = bool(settings.AMAZON_SES_SNS_TOPIC_ARNS)
        self.session_params, self.client_params = {}, {}
        self.sns_message: dict = {}
        AnymailBaseWebhookView.__init__(self, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.basic_auth and not request.META.get("HTTP_AUTHORIZATION"):
            # SNS sends the credentials of its endpoint URL only after a 401 challenge.
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Basic realm="Anymail WEBHOOK_SECRET"'
            return response
        return super().post(request, *args, **kwargs)

    def validate_request(self, request: Any) -> None:
        message = self._parse_sns_message(request)
        topic = message.get("TopicArn", "")
        if topic not in settings.AMAZON_SES_SNS_TOPIC_ARNS:
            raise AnymailWebhookValidationFailure(f"SNS topic {topic!r} is not configured")
        if settings.AMAZON_SES_VERIFY_SNS_SIGNATURES:
            try:
                sns.verify(message)
            except sns.InvalidSNSMessage as exc:
                raise AnymailWebhookValidationFailure(str(exc)) from exc

    def elements(self, request: HttpRequest) -> list[object]:
        self.sns_message = self._parse_sns_message(request)
        kind = self.sns_message.get("Type")
        if kind == "SubscriptionConfirmation":
            self.auto_confirm_sns_subscription(self.sns_message)
            return []
        text = self.sns_message.get("Message")
        if kind != "Notification" or text == SNS_TOPIC_VALIDATED:
            return []  # UnsubscribeConfirmation and the topic's greeting carry no event
        return [json.loads(text)]

    def events_of(self, element: object) -> list[AnymailTrackingEvent]:
        return self.esp_to_anymail_events(_object(element), self.sns_message)

    def element_id(self, element: object) -> str:
        return str(self.sns_message.get("MessageId") or "")

    def stored_elements(self, raw: bytes, event_id: str) -> list[object]:
        data = _object(json.loads(raw.decode("utf-8")))
        if data.get("Type") == "Notification" and "Message" in data:
            self.sns_message = data  # a whole post: the SNS envelope
            return [json.loads(data["Message"])]
        # One SES event, kept without its envelope: anymail takes the event id (and a
        # timestamp) from the envelope, so they are put back. The SNS MessageId is the stored
        # id before the ":recipient" that _event_id() adds.
        self.sns_message = {"MessageId": event_id.partition(":")[0] or None}
        kind = str(data.get("eventType") or data.get("notificationType") or "")
        details = data.get(kind[:1].lower() + kind[1:]) or data.get("mail") or {}
        if isinstance(details, dict) and details.get("timestamp"):
            self.sns_message["Timestamp"] = details["timestamp"]
        return [data]

    def auto_confirm_sns_subscription(self, sns_message: dict) -> None:
        url = sns_message.get("SubscribeURL", "")
        if not sns.is_sns_url(url):
            raise AnymailWebhookValidationFailure(f"unexpected SNS SubscribeURL {url!r}")
        with urlopen(url, timeout=10) as response:  # noqa: S310 (https to AWS, checked above)
            response.read()
        logger.info("confirmed the SNS subscription to %s", sns_message.get("TopicArn"))


# provider name -> the view that receives its posts (webhook_urls.py mounts them).
VIEWS: dict[str, type[QuarantiningWebhookView]] = {
    "ses": SESTrackingView,
    "mailgun": MailgunTrackingView,
    "postmark": PostmarkTrackingView,
    "sendgrid": SendGridTrackingView,
}


def replay(provider: str, raw: bytes, event_id: str = "") -> tuple[bool, str]:
    """Runs a quarantined payload through the receiver again, without quarantining it again.

    The payload passed the provider's check when it arrived, so it is not checked again; it
    is converted by the provider's view and recorded by record(), as a post is. Returns
    (True, "") when every event in it is recorded now or already was (intake knows provider
    event ids: a replay counts nothing twice), else (False, what failed).
    """
    view_class = VIEWS.get(provider)
    if view_class is None:
        return False, f"no webhook receiver for provider {provider!r}"
    try:
        view = view_class()
        elements = view.stored_elements(bytes(raw), event_id)
    except Exception as exc:  # any fault reading it is the answer to the operator
        return False, f"unreadable payload: {_describe(exc)}"
    failures = []
    for element in elements:
        try:
            events = view.events_of(element)
        except Exception as exc:
            failures.append(f"unreadable event: {_describe(exc)}")
            continue
        for event in events:
            try:
                with transaction.atomic():
                    record(provider, event)
            except Exception as exc:
                logger.warning("%s event %s still fails: %s", provider, event.event_id, exc)
                failures.append(_describe(exc))
    return not failures, "; ".join(failures)[:2000]


def provider_name(esp_name: str) -> str:
    return PROVIDERS.get(esp_name, esp_name.lower().replace(" ", "_"))


def _object(element: object) -> dict:
    if not isinstance(element, dict):
        raise ValueError(f"expected a JSON object, got {type(element).__name__}")
    return element


def _raw(element: object) -> str:
    if isinstance(element, QueryDict):
        element = dict(element.lists())
    return json.dumps(element, default=str, sort_keys=True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def _quarantine(provider: str, raw: bytes | str, reason: str, event_id: str = "") -> None:
    intake.quarantine(
        raw, source="webhook", provider=provider, reason=reason, event_id=event_id[:255]
    )
