"""Decide what one parsed recipient result means for the subscriber.

From the RFC 3463 status AND the diagnostic wording, never from a 5xx alone: many 5.x.x
rejections are about the sender (block lists, policy, authentication) and a full mailbox is
transient even when the server answers 552. The rules themselves are data in bounces/rules.py.
"""

from __future__ import annotations

import re

from bounces import rules
from bounces.parse import ADDRESS_RE, RecipientResult

# Status codes about the SENDER's own address, whatever the text says ("Domain of sender
# address ... does not exist" would otherwise read as a dead recipient).
SENDER_STATUS = ("5.1.7", "5.1.8", "4.1.7", "4.1.8")
# A recipient refused only after DATA was accepted at RCPT TO: it exists, a filter refused
# the message (the way Japanese carriers and some Postfix/Courier filters answer).
AFTER_DATA_RE = re.compile(r"end of data|after data|>>> data\b", re.I)


def classify(result: RecipientResult) -> str:
    if result.kind == "arf" or result.feedback_type:
        return rules.FEEDBACK_TYPES.get(result.feedback_type.lower(), rules.COMPLAINT)
    if result.kind == "unsubscribe":
        return rules.UNSUBSCRIBE_REQUEST
    if result.kind == "autoreply":
        return rules.NOT_A_FAILURE
    if result.action in rules.NOT_FAILURE_ACTIONS:
        return rules.NOT_A_FAILURE
    if result.status in SENDER_STATUS:
        return rules.SENDER_SIDE
    if result.status.startswith("4.4."):
        # Network and routing trouble, still temporary (RFC 3463 X.4.x with class 4).
        return rules.SOFT
    if result.status in rules.HARD_STATUSES and _says_dead(result.diagnostic):
        return rules.HARD
    by_text = classify_text(_without_addresses(result.diagnostic))
    if by_text == rules.HARD and AFTER_DATA_RE.search(result.diagnostic):
        return rules.SOFT
    if by_text:
        # A 4.x.x code is a temporary failure whatever the wording says about the address.
        if by_text == rules.HARD and result.status.startswith("4"):
            return rules.SOFT
        if by_text == rules.HARD and result.reply_code.startswith("4") and not result.status:
            return rules.SOFT
        return by_text
    return classify_status(result.status) or classify_reply(result.reply_code) or rules.SOFT


def classify_text(text: str) -> str | None:
    return rules.match_text(text)


def _without_addresses(text: str) -> str:
    # An address such as "mailboxfull@example.org" or "spam@..." must not read as wording.
    return ADDRESS_RE.sub("<address>", text or "")


def _says_dead(text: str) -> bool:
    return any(k == rules.HARD and p.search(text or "") for p, k in rules.TEXT_RULES)


def classify_status(status: str) -> str | None:
    if not status:
        return None
    best: tuple[int, str] | None = None
    for prefix, klass in rules.STATUS_RULES:
        exact = status == prefix or (prefix.endswith(".") and status.startswith(prefix))
        if exact and (best is None or len(prefix) > best[0]):
            best = (len(prefix), klass)
    return best[1] if best else None


def classify_reply(reply_code: str) -> str | None:
    for prefix, klass in rules.REPLY_RULES:
        if reply_code.startswith(prefix):
            return klass
    return None
