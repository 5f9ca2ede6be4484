"""Parse a returned message into per-recipient results.

One entry point, parse_bounce(), that never raises: a message nothing understands comes back
as kind "unknown" with a reason, so the caller can quarantine it instead of losing it.

Order of trust: RFC 5965 feedback reports, then RFC 3464 delivery status notifications
(structured fields), then flufl.bounce's detectors for the non-standard formats, plus our own
patterns for the human-readable text (status code, SMTP reply, diagnostic), then RFC 3834
auto-replies.
"""

from __future__ import annotations

import email
import email.message
import json
import logging
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from flufl.bounce._detectors import (  # the public scan_message() re-raises: run them one by one
    aol,
    caiwireless,
    dsn,
    exchange,
    exim,
    groupwise,
    llnl,
    microsoft,
    netscape,
    postfix,
    qmail,
    simplematch,
    simplewarning,
    sina,
    smtp32,
    yahoo,
    yale,
)

from bounces.rules import MAILBOX_STATE_RE, match_text

logger = logging.getLogger(__name__)

# "unsubscribe" is a List-Unsubscribe (RFC 2369) mailto request that reached the bounce address.
KINDS = ("dsn", "arf", "autoreply", "unsubscribe", "plain", "unknown")

# flufl.bounce's own order: most specific first, generic heuristics last.
DETECTORS = [
    dsn.DSN,
    exim.Exim,
    sina.Sina,
    yahoo.Yahoo,
    yale.Yale,
    smtp32.SMTP32,
    postfix.Postfix,
    qmail.Qmail,
    groupwise.GroupWise,
    microsoft.Microsoft,
    caiwireless.Caiwireless,
    exchange.Exchange,
    netscape.Netscape,
    aol.AOL,
    simplematch.SimpleMatch,
    simplewarning.SimpleWarning,
    llnl.LLNL,
]

# Beyond this a "message" is not a bounce we can afford to walk; the head is enough.
MAX_BYTES = 2_000_000
MAX_DIAGNOSTIC = 1000
# A notice's statement about the mailbox is a sentence, not a paragraph of advice.
LEAD_STATEMENT_CHARS = 200

# The lookbehind starts a match only where a run of local-part characters starts: without
# it, a long run with no "@" is rescanned from every position in it (quadratic time).
ADDRESS_RE = re.compile(
    r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])"
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# An SMTP reply code where servers put it: line start, after "said:", "smtp;", "host ... said",
# "<address>:" (qmail, Exim) or the command it answered ("did not like our RCPT TO: 521").
# At a line start only blanks of that line may precede the code: "^\s*" would rescan a run
# of blank lines from each of them (quadratic), and the code's own line start finds it anyway.
REPLY_RE = re.compile(
    r"(?:^[^\S\n]*|(?:said:?|smtp;|\(|\]:?|>:|SMTP error|reply:|response:|"
    r"(?:rcpt to|mail from|data):)\s*)([245]\d\d)(?=[ -]|$)",
    re.I | re.M,
)
VERP_RE = re.compile(r"^bounces\+([^@]+)@", re.I)
MESSAGE_ID_RE = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.I | re.M)
ANGLE_ID_RE = re.compile(r"<[^<>\s]+@[^<>\s]+>")

AUTOREPLY_SUBJECT_RE = re.compile(
    r"\b(out of (the )?office|vacation|auto(matic)?[ -]?(reply|response|answer)|away from|"
    r"abwesenheit|absence|autoreply|i am away|on leave)\b",
    re.I,
)
# Words that say a message is a delivery failure, used to keep bounces out of auto-replies.
BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|delivery (status|fail|notification|problem)|returned mail|failure notice|"
    r"mail delivery|could not be delivered|non.?delivery|delivery has failed|rejected|bounce)",
    re.I,
)


@dataclass
class RecipientResult:
    recipient: str = ""
    action: str = ""  # failed / delayed / delivered / relayed / expanded, when the DSN says
    status: str = ""  # RFC 3463 x.y.z
    reply_code: str = ""  # remote SMTP reply, e.g. "550"
    diagnostic: str = ""
    remote_mta: str = ""
    original_message_id: str = ""
    feedback_type: str = ""
    kind: str = ""


@dataclass
class ParsedBounce:
    kind: str = "unknown"
    results: list[RecipientResult] = field(default_factory=list)
    original_message_id: str = ""
    feedback_type: str = ""
    verp_token: str = ""
    reason: str = ""  # why the message is "unknown", or which detector raised
    detector_errors: list[str] = field(default_factory=list)
    subject: str = ""


def normalise_line_endings(raw: bytes) -> bytes:
    """CRLF and CR-only become LF, and an mbox "From " separator line is dropped."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    data = data.lstrip(b"\n")
    if data.startswith(b"From "):
        _, _, data = data.partition(b"\n")
    return data


def parse_bounce(raw: bytes, envelope_recipient: str | None = None) -> ParsedBounce:
    """The per-recipient results of one returned message; never raises.

    raw is the message as received (any line endings, an mbox "From " line allowed);
    envelope_recipient is the address the MTA delivered it to, for the VERP token.

    A message that cannot be parsed comes back with kind "unknown", no results and a reason
    saying why ("empty message", "no recipient or failure found: ...", "parser error: ...");
    the caller quarantines it with that reason. A flufl.bounce detector that raises is skipped
    and named in detector_errors, so one broken detector neither loses the message nor stops
    the others.
    """
    try:
        return _parse(raw, envelope_recipient)
    except Exception as exc:  # the contract: never raise, quarantine instead
        logger.warning("bounce parser failed: %r", exc)
        parsed = ParsedBounce(kind="unknown", reason=f"parser error: {exc!r}"[:500])
        parsed.verp_token = _safe_verp(envelope_recipient)
        return parsed


def _safe_verp(envelope_recipient: str | None) -> str:
    try:
        return verp_token(envelope_recipient or "")
    except Exception:
        return ""


def verp_token(address: str) -> str:
    match = VERP_RE.match(address.strip().strip("<>"))
    return match.group(1) if match else ""


def _parse(raw: bytes, envelope_recipient: str | None) -> ParsedBounce:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw or b"")[:MAX_BYTES]
    data = normalise_line_endings(raw)
    parsed = ParsedBounce()
    if not data.strip():
        parsed.reason = "empty message"
        parsed.verp_token = _safe_verp(envelope_recipient)
        return parsed
    msg = email.message_from_bytes(data)
    parsed.subject = _header_text(msg, "Subject")
    parsed.verp_token = _safe_verp(envelope_recipient) or _verp_from_headers(msg)
    parsed.original_message_id = _original_message_id(msg, data)

    if _is_feedback_report(msg):
        _parse_arf(msg, parsed)
    if not parsed.results:
        _parse_ses_notification(msg, parsed)
    if not parsed.results and _is_unsubscribe_request(msg):
        parsed.kind = "unsubscribe"
        sender = _clean_address(str(msg.get("From") or ""))
        parsed.results.append(RecipientResult(recipient=sender, diagnostic=parsed.subject))
    if not parsed.results and _delivery_status_parts(msg):
        _parse_dsn(msg, parsed)
    if not parsed.results and not _is_autoreply(msg):
        _parse_plain(msg, parsed)
    if not parsed.results and _is_autoreply(msg, strict=False):
        _parse_autoreply(msg, parsed)
    if not parsed.results and parsed.kind == "unknown" and not parsed.reason:
        parsed.reason = "no recipient or failure found: the message cannot be parsed"
        if parsed.detector_errors:
            parsed.reason += f" ({len(parsed.detector_errors)} detector(s) raised)"
    for result in parsed.results:
        result.original_message_id = result.original_message_id or parsed.original_message_id
        result.kind = parsed.kind
        result.diagnostic = " ".join(result.diagnostic.split())[:MAX_DIAGNOSTIC]
    return parsed


# -- helpers over the email package ------------------------------------------------------------


def _header_text(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:
        return str(value)


def _text_of(part: email.message.Message) -> str:
    """A text part decoded with its charset, or latin-1 when the charset lies."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw
        if isinstance(raw, list):
            return "\n".join(_flatten(p) for p in raw if isinstance(p, email.message.Message))
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, TypeError):
        return payload.decode("latin-1")


def _flatten(part: email.message.Message) -> str:
    try:
        return part.as_string()
    except Exception:
        return ""


def _walk(msg: email.message.Message):
    try:
        yield from msg.walk()
    except Exception:
        yield msg


def _clean_address(value: str) -> str:
    value = value.strip()
    if ";" in value:  # "rfc822; user@host" (address type prefix)
        value = value.split(";", 1)[1]
    match = ADDRESS_RE.search(value)
    return match.group(0).strip(".").lower() if match else ""


def _verp_from_headers(msg: email.message.Message) -> str:
    # MTAs record the envelope recipient in these when the pipe did not pass it along.
    for name in ("X-Original-To", "Delivered-To", "Envelope-To", "To"):
        for value in msg.get_all(name) or []:
            for address in ADDRESS_RE.findall(str(value)):
                token = verp_token(address)
                if token:
                    return token
    return ""


def _original_message_id(msg: email.message.Message, data: bytes) -> str:
    """The Message-ID of the message we sent, from the returned headers."""
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, email.message.Message) and inner.get("Message-ID"):
                found = ANGLE_ID_RE.search(str(inner.get("Message-ID")))
                if found:
                    return found.group(0)
        if ctype in ("text/rfc822-headers", "text/rfc822-header"):
            found = MESSAGE_ID_RE.search(_text_of(part))
            if found:
                return found.group(1)
    for name in ("In-Reply-To", "References"):
        found = ANGLE_ID_RE.search(str(msg.get(name) or ""))
        if found:
            return found.group(0)
    # Plain-text bounces quote the original headers inline after the bounce's own header.
    _, _, body = data.partition(b"\n\n")
    found = MESSAGE_ID_RE.search(body.decode("latin-1"))
    return found.group(1) if found else ""


# -- RFC 5965 feedback reports ----------------------------------------------------------------


def _is_feedback_report(msg: email.message.Message) -> bool:
    if (msg.get_param("report-type") or "").lower() == "feedback-report":
        return True
    for part in _walk(msg):
        if part.get_content_type() == "message/feedback-report":
            return True
        # Microsoft's JMRP complaints are a bare message/rfc822 naming the complainer.
        if part.get(JMRP_HEADER):
            return True
    return False


JMRP_HEADER = "X-HmXmrOriginalRecipient"


def _fields(text: str) -> dict[str, list[str]]:
    """Header-style "Name: value" lines (with continuations) into a multi-dict, lowercase names."""
    out: dict[str, list[str]] = {}
    last = ""
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and last:
            out[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            last = name.strip().lower()
            out.setdefault(last, []).append(value.strip())
    return out


def _parse_arf(msg: email.message.Message, parsed: ParsedBounce) -> None:
    report: dict[str, list[str]] = {}
    inner_to = ""
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            report = _fields(_part_body_text(part))
        elif ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, email.message.Message):
                inner_to = str(inner.get(JMRP_HEADER) or inner.get("To") or "")
        elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
            inner_to = inner_to or (_fields(_text_of(part)).get("to") or [""])[0]
    feedback_type = ((report.get("feedback-type") or [""])[0] or "abuse").lower().strip()
    parsed.kind = "arf"
    parsed.feedback_type = feedback_type
    recipients = [
        _clean_address(v)
        for key in ("original-rcpt-to", "removal-recipient")
        for v in report.get(key, [])
    ]
    recipients = [r for r in dict.fromkeys(recipients) if r]
    if not recipients:
        recipients = [r.lower() for r in ADDRESS_RE.findall(inner_to)][:1]
    diagnostic = " ".join(
        f"{k}: {v[0]}"
        for k, v in report.items()
        if k in ("feedback-type", "auth-failure", "user-agent")
    )
    for recipient in recipients or [""]:
        parsed.results.append(
            RecipientResult(recipient=recipient, feedback_type=feedback_type, diagnostic=diagnostic)
        )


def _part_body_text(part: email.message.Message) -> str:
    """message/* parts are parsed as a message by the email package: get the fields back."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            if isinstance(sub, email.message.Message):
                chunks.append("\n".join(f"{k}: {v}" for k, v in sub.items()))
                body = sub.get_payload()
                if isinstance(body, str):
                    chunks.append(body)
        return "\n\n".join(chunks)
    return _text_of(part)


# -- Amazon SES notifications mailed as JSON (SNS e-mail subscriptions) -----------------------


def _parse_ses_notification(msg: email.message.Message, parsed: ParsedBounce) -> None:
    if msg.is_multipart():
        return
    text = _text_of(msg).strip()
    if not text.startswith("{") or "notificationType" not in text[:2000]:
        return
    try:  # SNS appends an unsubscribe footer after the JSON document
        # strict=False: mail transports fold long lines, leaving raw newlines inside strings.
        data, _ = json.JSONDecoder(strict=False).raw_decode(text)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    kind = str(data.get("notificationType") or "")
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    message_id = str((mail or {}).get("messageId") or "")
    if kind == "Complaint":
        complaint = data.get("complaint") or {}
        feedback = str(complaint.get("complaintFeedbackType") or "abuse").lower()
        parsed.kind, parsed.feedback_type = "arf", feedback
        for item in complaint.get("complainedRecipients") or []:
            address = _clean_address(str((item or {}).get("emailAddress") or ""))
            parsed.results.append(RecipientResult(recipient=address, feedback_type=feedback))
    elif kind == "Bounce":
        parsed.kind = "dsn"
        for item in (data.get("bounce") or {}).get("bouncedRecipients") or []:
            item = item or {}
            result = RecipientResult(
                recipient=_clean_address(str(item.get("emailAddress") or "")),
                action=_first_word(str(item.get("action") or "")),
                status=_status_of(str(item.get("status") or "")),
                diagnostic=str(item.get("diagnosticCode") or "").split(";", 1)[-1].strip(),
            )
            _fill_codes(result, result.diagnostic)
            parsed.results.append(result)
    elif kind == "Delivery":
        parsed.kind = "dsn"
        for address in (data.get("delivery") or {}).get("recipients") or []:
            parsed.results.append(
                RecipientResult(recipient=_clean_address(str(address)), action="delivered")
            )
    if parsed.results and message_id and not parsed.original_message_id:
        parsed.original_message_id = f"<{message_id}>"


# -- RFC 3464 delivery status notifications ---------------------------------------------------


def _delivery_status_parts(msg: email.message.Message) -> list[email.message.Message]:
    return [
        p
        for p in _walk(msg)
        if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    ]


def _parse_dsn(msg: email.message.Message, parsed: ParsedBounce) -> None:
    human = _human_text(msg)
    for part in _delivery_status_parts(msg):
        groups = _status_groups(part)
        lead = _lead_statement(human, groups)
        for group in groups:
            recipient = _clean_address((group.get("final-recipient") or [""])[0]) or _clean_address(
                (group.get("original-recipient") or [""])[0]
            )
            if not recipient:
                continue
            diagnostic = (group.get("diagnostic-code") or [""])[0]
            if ";" in diagnostic[:12]:  # "smtp; 550 ..."
                diagnostic = diagnostic.split(";", 1)[1]
            result = RecipientResult(
                recipient=recipient,
                action=_first_word((group.get("action") or [""])[0]),
                status=_status_of((group.get("status") or [""])[0]),
                remote_mta=(group.get("remote-mta") or [""])[0].split(";")[-1].strip(),
                diagnostic=diagnostic.strip(),
            )
            # Servers often put the useful wording only in the human-readable part.
            for context in (_context_for(human, recipient), lead):
                if context and context not in result.diagnostic:
                    result.diagnostic = (result.diagnostic + " " + context).strip()
            _fill_codes(result, result.diagnostic)
            parsed.results.append(result)
    if parsed.results:
        parsed.kind = "dsn"
    _dedupe(parsed)


def _lead_statement(human: str, groups: list[dict[str, list[str]]]) -> str:
    """What the notice says about the mailbox once, above its list of recipients.

    Some servers state the mailbox's condition in a sentence of its own and list the addresses
    under it with a bare reply (au: "The user(s) account is disabled." over "<x>: 550 user
    unknown"); that sentence belongs to every recipient below it. Only short statements of a
    mailbox's state count: a notice's longer prose or headline ("Address not found") is the same
    for every failure it reports.
    """
    lowered = human.lower()
    recipients = [_clean_address((group.get("final-recipient") or [""])[0]) for group in groups]
    positions = [lowered.find(r) for r in recipients if r and r in lowered]
    if not positions:
        return ""
    paragraphs = re.split(r"\n\s*\n", human[: min(positions)])
    stated = [
        " ".join(p.split())
        for p in paragraphs
        if len(p.strip()) <= LEAD_STATEMENT_CHARS and MAILBOX_STATE_RE.search(p)
    ]
    return " ".join(stated)


def _status_groups(part: email.message.Message) -> list[dict[str, list[str]]]:
    """The per-recipient field groups of a delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        groups = []
        for sub in payload:
            if not isinstance(sub, email.message.Message):
                continue
            groups.extend(_recipient_groups("\n".join(f"{k}: {v}" for k, v in sub.items())))
            body = sub.get_payload()
            if isinstance(body, str) and body.strip():
                # A missing blank line between groups leaves the rest in the body.
                groups.extend(_split_groups(body))
        return groups
    return _split_groups(_text_of(part))


def _split_groups(text: str) -> list[dict[str, list[str]]]:
    chunks = [chunk for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]
    return [group for chunk in chunks for group in _recipient_groups(chunk)]


def _recipient_groups(text: str) -> list[dict[str, list[str]]]:
    """One field group per recipient, also when a server leaves out the blank line between
    them (AOL does): a second Final-Recipient, or an Original-Recipient after the first
    recipient's Action or Status, begins the next recipient."""
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        name = line.partition(":")[0].strip().lower()
        seen = {n.partition(":")[0].strip().lower() for n in groups[-1]}
        if "final-recipient" in seen and (
            name == "final-recipient"
            or (name == "original-recipient" and seen & {"action", "status"})
        ):
            groups.append([])
        groups[-1].append(line)
    return [_fields("\n".join(lines)) for lines in groups]


def _first_word(text: str) -> str:
    words = text.lower().split()
    return words[0] if words else ""


def _status_of(text: str) -> str:
    match = STATUS_RE.search(text or "")
    return ".".join(match.groups()) if match else ""


def _fill_codes(result: RecipientResult, text: str) -> None:
    if not result.status:
        result.status = _status_of(text)
    if not result.reply_code:
        match = REPLY_RE.search(text or "")
        if match:
            result.reply_code = match.group(1)
    # A bare "5.0.0" in the structured field hides the precise code the server gave.
    if result.status.endswith(".0.0"):
        precise = [".".join(m.groups()) for m in STATUS_RE.finditer(text or "")]
        precise = [s for s in precise if not s.endswith(".0.0") and s[0] == result.status[0]]
        if precise:
            result.status = precise[0]


def _dedupe(parsed: ParsedBounce) -> None:
    seen: dict[str, RecipientResult] = {}
    for result in parsed.results:
        key = result.recipient
        if key in seen:
            kept = seen[key]
            if not kept.diagnostic and result.diagnostic:
                seen[key] = result
            continue
        seen[key] = result
    parsed.results = list(seen.values())


# -- non-standard bounces ---------------------------------------------------------------------


def _human_text(msg: email.message.Message) -> str:
    """The human-readable part: text parts outside returned messages, not the returned copy."""
    chunks: list[str] = []
    _collect_text(msg, chunks, depth=0)
    text = "\n".join(chunks)
    return _cut_returned_copy(text)


def _collect_text(part: email.message.Message, chunks: list[str], depth: int) -> None:
    if depth > 10:
        return
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "text/rfc822-headers", "message/delivery-status"):
        return
    if part.is_multipart():
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, email.message.Message):
                _collect_text(sub, chunks, depth + 1)
        return
    if part.get_content_maintype() in ("text", "multipart") or depth == 0:
        text = _text_of(part)
        if part.get_content_subtype() == "html":
            text = re.sub(r"<[^>]{0,2000}>", " ", text)
        chunks.append(text)


# Where an inline copy of the original message begins in plain-text bounces.
RETURNED_COPY_RE = re.compile(
    r"^(-+ ?Below this line is a copy of the message|-+ ?(The )?original message|"
    r"-+ ?This is a copy of the message|-+ ?Original message follows|"
    r"------ This is a copy of the message|\s*-+ ?Returned message|Original message follows|"
    r"-+ ?Unsent Message below|.*original message headers|Message headers follow|"
    r"-+ ?(Mensaje|Message) original)",
    re.I | re.M,
)


def _cut_returned_copy(text: str) -> str:
    match = RETURNED_COPY_RE.search(text)
    return text[: match.start()] if match and match.start() > 0 else text


def _run_detectors(msg: email.message.Message, parsed: ParsedBounce) -> tuple[list[str], list[str]]:
    """Addresses found by flufl.bounce, (temporary, permanent); a raising detector is noted."""
    for detector in DETECTORS:
        try:
            temporary, permanent = detector().process(msg)
        except Exception as exc:
            parsed.detector_errors.append(f"{detector.__name__}: {exc!r}"[:300])
            continue
        if temporary or permanent:
            return _decoded(temporary), _decoded(permanent)
    return [], []


def _decoded(addresses) -> list[str]:
    out = []
    for address in addresses or []:
        if isinstance(address, bytes):
            address = address.decode("utf-8", "replace")
        cleaned = _clean_address(str(address))
        if cleaned:
            out.append(cleaned)
    return sorted(set(out))


# Plain bounces put the failed address on its own line, often in angle brackets or followed by
# a colon: qmail "<user@host>:", Exim "  user@host", Sendmail "<user@host>... User unknown",
# Exchange 2000/2003 "user@host on 4/29/01 11:34 PM".
FAILED_LINE_RE = re.compile(
    r"^[\s>]*(?:(to|rcpt to|recipient|address|addresses|original-recipient|final-recipient)"
    r"\s*:?\s*)?"
    r"<?(?:rfc822;\s*)?([^\s<>@]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?"
    r"\s*(?::|\.\.\.|$|\(|--|,|<|on \d)",
    re.I | re.M,
)


# Newer providers name the address inside a sentence: Gmail "Your message wasn't delivered to
# x@y because ...", Outlook "Your message to x@y couldn't be delivered", DragonFly and others
# "There was an error delivering your mail to <x@y>".
FAILED_SENTENCE_RE = re.compile(
    r"(?:(?:wasn't|was not|couldn't be|could not be) delivered to:?|your message to|"
    r"error delivering your (?:mail|message) to|"
    r"delivery to the following recipient failed[^\n]*\n\s*)\s*<?"
    r"([^\s<>@]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})",
    re.I,
)
# The part of those that says delivery failed, whoever wrote the notice: au one net's "Could not
# be delivered to: <x>" comes from a no-reply address under a subject in Japanese.
NOT_DELIVERED_RE = re.compile(
    r"(?:wasn't|was not|couldn't be|could not be) delivered to:?\s*<?[^\s<>@]+@[A-Za-z0-9.-]+\.",
    re.I,
)


def _parse_plain(msg: email.message.Message, parsed: ParsedBounce) -> None:
    human = _human_text(msg)
    temporary, permanent = _run_detectors(msg, parsed)
    addresses = permanent + [a for a in temporary if a not in permanent]
    # Detectors read "<id@host>" in a returned copy's Message-ID as an address.
    message_id = parsed.original_message_id.strip("<>").lower()
    addresses = [a for a in addresses if a != message_id]
    if addresses:
        # Old Sendmail lists every failed recipient on its own coded line, but the detectors
        # stop at the first one they recognise.
        addresses += [a for a in _coded_recipient_lines(human) if a not in addresses]
    if not addresses and _looks_like_bounce(msg, human):
        addresses = _addresses_in_text(msg, human) or _returned_recipient(msg)
    if not addresses:
        return
    parsed.kind = "plain"
    for address in addresses:
        context = _context_for(human, address, to_reply=True)
        if not (STATUS_RE.search(context) or REPLY_RE.search(context) or match_text(context)):
            # The address line alone (a quoted "To:" line, a bare list) says nothing: the
            # explanation is elsewhere in the human-readable text.
            context = (context + " " + human.strip()[:MAX_DIAGNOSTIC]).strip()
        result = RecipientResult(recipient=address, diagnostic=context.strip())
        if address in temporary and address not in permanent:
            result.action = "delayed" if _says_delayed(human) else ""
        _fill_codes(result, context)
        parsed.results.append(result)


# Sendmail's per-recipient error line in a transcript: "554 <user@host>... reason".
CODED_RECIPIENT_RE = re.compile(
    r"^\s*[45]\d\d <([^\s<>@]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>\.\.\. ", re.M
)
# Where Sendmail begins the next entry of a transcript: another recipient's coded line, a
# host's line ("550 example.org (smtp)... Host unknown") or the next session.
SENDMAIL_ENTRY_RE = re.compile(
    r"\s*([45]\d\d <?[^\s<>@]+@[^\s<>]+>?\.\.\.|[45]\d\d \S+ \(\w+\)\.\.\.|while talking to )", re.I
)


def _coded_recipient_lines(human: str) -> list[str]:
    found = [m.group(1).lower().strip(".") for m in CODED_RECIPIENT_RE.finditer(human)]
    return [a for a in dict.fromkeys(found) if not _is_daemon(a) and not verp_token(a)]


def _addresses_in_text(msg: email.message.Message, human: str) -> list[str]:
    """Failed addresses named by the human-readable text, most explicit wording first."""
    own = {a.lower() for a in ADDRESS_RE.findall(str(msg.get("From") or ""))}
    # A sentence that says delivery to an address failed names it, even postmaster@.
    named = [m.group(1) for m in FAILED_SENTENCE_RE.finditer(human)]
    named += _coded_recipient_lines(human)
    lines = [m for m in FAILED_LINE_RE.finditer(human) if not _is_daemon(m.group(2).lower())]
    # Exchange and others repeat the original "To:" line above the list of failures: a bare
    # address line names a failure, a "To:" line only when nothing else does.
    bare = [m.group(2) for m in lines if (m.group(1) or "").lower() != "to"]
    named += bare or [m.group(2) for m in lines]
    found = [a.lower().strip(".") for a in named]
    return [a for a in dict.fromkeys(found) if a not in own and not verp_token(a)]


def _returned_recipient(msg: email.message.Message) -> list[str]:
    """The failed address when the bounce text names none: Exim's X-Failed-Recipients header,
    else the To of the returned copy, which is the recipient since every message we send goes
    to exactly one address."""
    failed = [_clean_address(a) for a in str(msg.get("X-Failed-Recipients") or "").split(",")]
    if any(failed):
        return [a for a in dict.fromkeys(failed) if a]
    for part in _walk(msg):
        headers: dict[str, list[str]] = {}
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, email.message.Message):
                headers = {"to": [str(v) for v in inner.get_all("To") or []]}
        elif part.get_content_type() in ("text/rfc822-headers", "text/rfc822-header"):
            headers = _fields(_text_of(part))
        addresses = {a.lower() for v in headers.get("to", []) for a in ADDRESS_RE.findall(v)}
        if len(addresses) == 1:
            return [addresses.pop()]
    return []


def _is_daemon(address: str) -> bool:
    local = address.split("@", 1)[0]
    return local in ("mailer-daemon", "postmaster", "mail-daemon", "root")


def _looks_like_bounce(msg: email.message.Message, human: str) -> bool:
    sender = str(msg.get("From") or "").lower()
    if re.search(r"mailer-daemon|post_?master|mail delivery|mail ?daemon", sender):
        return True
    null_sender = str(msg.get("Return-Path") or "").strip() in ("<>", "")
    if null_sender and BOUNCE_SUBJECT_RE.search(str(msg.get("Subject") or "")):
        return True
    if STATUS_RE.search(human) and BOUNCE_SUBJECT_RE.search(str(msg.get("Subject") or "")):
        return True
    return bool(NOT_DELIVERED_RE.search(human))


def _says_delayed(text: str) -> bool:
    return bool(
        re.search(
            r"\b(delayed|will (keep|continue) trying|not yet been delivered|"
            r"still trying|will retry)\b",
            text,
            re.I,
        )
    )


QUOTED_HEADER_RE = re.compile(r"\s*(Received|Return-Path|Message-ID|DKIM-Signature):", re.I)
NEXT_ADDRESS_RE = re.compile(r"\s*<?[^\s<>@:]+@[^\s<>:]+>?:")
# A header field of the original message quoted in the notice text, and the start of a Sendmail
# session transcript; both matched against a line with its indentation stripped.
ORIGINAL_FIELD_RE = re.compile(r"(To|Cc|Bcc|From|Subject|Date|Sent):", re.I)
TRANSCRIPT_START_RE = re.compile(r"while talking to \S+:", re.I)


def _context_for(human: str, address: str, to_reply: bool = False) -> str:
    """The lines that explain one address's failure: from its line to the next blank line.

    With to_reply, on to the paragraph with the server's reply when the first one has no code:
    plain bounces such as Gmail's put "The error that the other server returned was: 550 5.1.1
    ..." a paragraph further down. DSNs have their Diagnostic-Code and do not need it.
    """
    if not human or not address:
        return ""
    lines = human.split("\n")
    mentions = [i for i, line in enumerate(lines) if address in line.lower()]
    if not mentions:
        return ""
    # Notices often quote the original "To:" line above the failure itself (Messaging Server's
    # "This report relates to a message you sent with the following header fields"): that
    # quote says nothing about the failure, a later line naming the address does.
    explained = [i for i in mentions if not ORIGINAL_FIELD_RE.match(lines[i].lstrip())]
    index = (explained or mentions)[0]
    # The summary line first: its code is the one the reply-code search should find.
    block = [lines[index], *_transcript_above(lines, index)]
    for follow in lines[index + 1 : index + 16]:
        if not follow.strip():
            if len(block) > 1 and not (to_reply and _lacks_code(block)):
                break
            continue
        if _starts_next_block(follow, address):
            break  # the next recipient's block, or the quoted original headers
        block.append(follow)
    text = " ".join(part.strip() for part in block)
    # A line that only names the address says nothing: take the whole text instead.
    if len(text) <= len(address) + 6:
        return ""
    return text


def _transcript_above(lines: list[str], index: int) -> list[str]:
    """The "While talking to <host>:" dialogue that a Sendmail summary line concludes.

    Sendmail writes the session first (">>> MAIL From:<...>", "<<< 501 ...") and the
    recipient's coded line ("554 <user@host>... Remote protocol error") after it, so the
    command that was refused and the server's words are above the address, not beside it.
    """
    if not CODED_RECIPIENT_RE.match(lines[index]):
        return []
    for above in range(index - 1, max(index - 12, -1), -1):
        line = lines[above]
        if not line.strip() or CODED_RECIPIENT_RE.match(line):
            return []  # another recipient's entry, or no dialogue at all
        if TRANSCRIPT_START_RE.match(line.lstrip()):
            return lines[above:index]
    return []


def _starts_next_block(line: str, address: str) -> bool:
    if QUOTED_HEADER_RE.match(line):
        return True
    # Postfix wraps a long reply onto lines that begin "<address>: ..." again: the same
    # address continues its own block, another one starts the next.
    match = NEXT_ADDRESS_RE.match(line) or SENDMAIL_ENTRY_RE.match(line)
    return bool(match) and address not in match.group(0).lower()


def _lacks_code(block: list[str]) -> bool:
    text = "\n".join(block)
    return not (STATUS_RE.search(text) or REPLY_RE.search(text)) and len(block) < 6


def _is_unsubscribe_request(msg: email.message.Message) -> bool:
    if str(msg.get("X-Apple-Unsubscribe") or "").strip().lower() == "true":
        return True
    return _header_text(msg, "Subject").strip().lower() in ("unsubscribe", "remove", "opt-out")


# -- RFC 3834 auto-replies --------------------------------------------------------------------


def _is_autoreply(msg: email.message.Message, strict: bool = True) -> bool:
    auto_submitted = str(msg.get("Auto-Submitted") or "").lower()
    subject = str(msg.get("Subject") or "")
    if BOUNCE_SUBJECT_RE.search(subject) or "mailer-daemon" in str(msg.get("From") or "").lower():
        return False
    if auto_submitted.startswith("auto-replied"):
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Vacation")):
        return True
    if str(msg.get("Precedence") or "").lower().strip() == "auto_reply":
        return True
    return not strict and bool(AUTOREPLY_SUBJECT_RE.search(_header_text(msg, "Subject")))


def _parse_autoreply(msg: email.message.Message, parsed: ParsedBounce) -> None:
    parsed.kind = "autoreply"
    sender = _clean_address(str(msg.get("From") or ""))
    parsed.results.append(
        RecipientResult(recipient=sender, diagnostic=_header_text(msg, "Subject"))
    )
