"""Decide what one parsed recipient result means for the subscriber.

From the RFC 3463 status AND the diagnostic wording, never from a 5xx alone: many 5.x.x
rejections are about the sender (block lists, policy, authentication) and a full mailbox is
transient even when the server answers 552. A hard bounce suppresses the address at once, so
"hard" needs dead-address evidence that nothing else in the result contradicts; when the code
and the wording disagree the result is soft, and repeated soft bounces still suppress the
address under the soft rule. The rules themselves are data in bounces/rules.py.
"""

from __future__ import annotations

import re

from bounces import rules
from bounces.parse import ADDRESS_RE, RecipientResult

# Status codes about the SENDER's own address, whatever the text says ("Domain of sender
# address ... does not exist" would otherwise read as a dead recipient).
# 5.7.27 is RFC 7505's "sender address has null MX".
SENDER_STATUS = ("5.1.7", "5.1.8", "4.1.7", "4.1.8", "5.7.27")
# A recipient refused only after DATA was accepted at RCPT TO: it exists, a filter refused
# the message (the way Japanese carriers and some Postfix/Courier filters answer).
# Only the MTA's own words count: a Sendmail transcript line ">>> DATA" may be followed by the
# replies to pipelined RCPT TO commands. Yahoo refuses unknown users at DATA, in its own words.
AFTER_DATA_RE = re.compile(r"end of data|after data", re.I)
DEAD_AT_DATA_RE = re.compile(r"doesn't have an? \S+ account", re.I)
# A refusal in reply to RCPT TO is the server's own answer about the address (qmail-remote
# words it "does not like recipient").
AT_RCPT_RE = re.compile(r"rcpt to|does not like recipient", re.I)
# RFC 3463 subjects that say the address itself was not the problem: X.2 "the mailbox exists
# but ...", X.3 the receiving mail system, X.7 security or policy. When the session phase is
# unknown, a "user unknown" under one of these is a filter's answer, not proof of a dead address.
NOT_ADDRESS_SUBJECTS = ("2", "3", "7")
# Greylisting and "try later" answers delay every new sender: routine, not worth an alert.
ROUTINE_DELAY_RE = re.compile(r"grey ?list|gray ?list|try again later|temporarily deferred", re.I)
# RFC 7504: 521 "host does not accept mail", 556 "domain does not accept mail" (null MX).
NO_MAIL_REPLIES = ("521", "556")


def classify(result: RecipientResult) -> str:
    """One of the rules classes for a parsed result; never raises on odd values."""
    if result.kind == "arf" or result.feedback_type:
        return rules.FEEDBACK_TYPES.get(result.feedback_type.lower(), rules.COMPLAINT)
    if result.kind == "unsubscribe":
        return rules.UNSUBSCRIBE_REQUEST
    if result.kind == "autoreply":
        return rules.NOT_A_FAILURE
    by_text = classify_text(_without_addresses(result.diagnostic))
    if result.action in rules.NOT_FAILURE_ACTIONS:
        # A delay caused by a refusal of the sender (PTR, block list, ...) is worth an
        # operator alert now; sender_side never counts against the recipient.
        if (
            result.action == "delayed"
            and by_text == rules.SENDER_SIDE
            and not ROUTINE_DELAY_RE.search(result.diagnostic)
        ):
            return rules.SENDER_SIDE
        return rules.NOT_A_FAILURE
    if result.status in SENDER_STATUS:
        return rules.SENDER_SIDE
    if result.status.startswith("4.4.") and by_text != rules.SENDER_SIDE:
        # Network and routing trouble, still temporary (RFC 3463 X.4.x with class 4).
        return rules.SOFT
    if result.status in rules.HARD_STATUSES and _says_dead(result.diagnostic):
        return rules.HARD
    if by_text == rules.HARD:
        return rules.HARD if _hard_is_consistent(result) else rules.SOFT
    if by_text:
        return by_text
    if result.reply_code in NO_MAIL_REPLIES and not result.status.startswith("4"):
        return rules.HARD
    return classify_status(result.status) or classify_reply(result.reply_code) or rules.SOFT


def _hard_is_consistent(result: RecipientResult) -> bool:
    """Whether dead-address wording is borne out by the rest of the result."""
    # A 4.x.x code is a temporary failure whatever the wording says about the address.
    if result.status.startswith("4") or (not result.status and result.reply_code.startswith("4")):
        return False
    if AFTER_DATA_RE.search(result.diagnostic) and not DEAD_AT_DATA_RE.search(result.diagnostic):
        return False
    if AT_RCPT_RE.search(result.diagnostic) or not result.status:
        return True
    return result.status.split(".")[1] not in NOT_ADDRESS_SUBJECTS


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
