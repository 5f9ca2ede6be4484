"""Decide what one parsed recipient result means for the subscriber.

From the RFC 3463 status AND the diagnostic wording, never from a 5xx alone: many 5.x.x
rejections are about the sender (block lists, policy, authentication) and a full mailbox is
transient even when the server answers 552. A hard bounce suppresses the address at once, so
"hard" needs dead-address evidence that nothing else in the result contradicts: the wording
plus an address status (X.1.x), the RCPT TO phase, or the recipient's own mail system saying,
in a form we know, that it looked the user up. When the code and the wording disagree, or a
"user unknown" comes with no phase, an unspecific code and nothing that says who wrote it
(filters answer that way after DATA, gateways pass refusals on without their reply), the
result is soft, and repeated soft bounces still suppress the address under the soft rule.
The rules themselves are data in bounces/rules.py.
"""

from __future__ import annotations

import dataclasses
import re

from bounces import rules
from bounces.parse import ADDRESS_RE, MAX_DIAGNOSTIC, RecipientResult

# Status codes about the SENDER's own address, whatever the text says ("Domain of sender
# address ... does not exist" would otherwise read as a dead recipient).
# 5.7.27 is RFC 7505's "sender address has null MX".
SENDER_STATUS = ("5.1.7", "5.1.8", "4.1.7", "4.1.8", "5.7.27")
# The SMTP command a remote refusal answered, in the words MTAs use for it. A refusal in reply
# to RCPT TO is the server's own answer about the address: Postfix "in reply to RCPT TO
# command", Exim "after RCPT TO", qmail-remote "does not like recipient", Sendmail and Courier
# transcripts ">>> RCPT To:<...>", and Postfix and Office 365 word RCPT restrictions "Recipient
# address rejected". A bare "RCPT TO: address" is only a listing of the envelope (Apache James,
# Verizon), not the command a reply answered.
AT_RCPT_RE = re.compile(
    r"rcpt to:? ?<|rcpt( to)? command|after rcpt|does not like recipient|"
    r"recipient address rejected",
    re.I,
)
# A recipient refused only after DATA was accepted at RCPT TO: it exists, a filter refused the
# message (Japanese carriers, Postfix/Courier filters, m-FILTER's "SMTP command: DATA").
AFTER_DATA_RE = re.compile(r"end of data|after data|>>> data\b|smtp command:? ?-* ?data\b", re.I)
# A refusal in reply to MAIL FROM, before any recipient was named (Sendmail and Courier
# transcripts ">>> MAIL From:<...>", Postfix "in reply to MAIL FROM command", Exim "after MAIL
# FROM"): it can only be about the sender or the connecting host (RFC 5321 section 3.3).
AT_MAIL_RE = re.compile(r"mail from:? ?<|mail from command|after mail from", re.I)
# With PIPELINING a client writes DATA before it reads the replies to RCPT TO, so a transcript's
# ">>> DATA" may be followed by a RCPT refusal; the server's "503" answer to DATA ("need RCPT",
# "no valid recipients") shows that the refusal before it answered RCPT TO.
PIPELINED_RCPT_RE = re.compile(r"\b503[ -]|need rcpt|no valid recipients", re.I)
# The recipient's own mail system, in a form that says so, looked the user up and did not find
# it: a local delivery agent (Sendmail's mail.local, IMail's final delivery), a directory
# (Lotus Domino and Notes name theirs), or Exchange 5.5 to 2003's diagnostic code 000C05A6,
# "Unknown Recipient". Whatever reply its MTA then gave, this verdict is about the address.
LOCAL_VERDICT_RE = re.compile(
    r"\bmail\.local\b|local delivery (agent|failed)|final delivery userid|"
    r"not listed in (the )?(domino directory|public name & address book)|\(000C05A6\)",
    re.I,
)
# Yahoo refuses unknown users after DATA, in its own reply ("554 delivery error: dd This user
# doesn't have a yahoo.com account"), and means it. The sentence without that reply is wording.
DEAD_AT_DATA_RE = re.compile(r"delivery error: dd this user doesn't have an? \S+ account", re.I)
# RFC 3463 subjects that say the address itself was not the problem: X.2 "the mailbox exists
# but ...", X.3 the receiving mail system, X.7 security or policy. When the session phase is
# unknown, a "user unknown" under one of these is a filter's answer, not proof of a dead address.
NOT_ADDRESS_SUBJECTS = ("2", "3", "7")
# Greylisting and "try later" answers delay every new sender: routine, not worth an alert.
ROUTINE_DELAY_RE = re.compile(r"grey ?list|gray ?list|try again later|temporarily deferred", re.I)
# Words that put a refusal on the sender's address rather than the recipient's.
SENDER_WORD_RE = re.compile(r"sender|mail from|envelope.?from|return.?path", re.I)
# RFC 7504: 521 "host does not accept mail", 556 "domain does not accept mail" (null MX).
NO_MAIL_REPLIES = ("521", "556")


def classify(result: RecipientResult) -> str:
    """One of the rules classes for a parsed result; never raises on odd values."""
    if len(result.diagnostic or "") > MAX_DIAGNOSTIC:
        # The head of a diagnostic says what it is; the tables are not worth minutes of text.
        result = dataclasses.replace(result, diagnostic=result.diagnostic[:MAX_DIAGNOSTIC])
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
    if result.status in SENDER_STATUS and not _names_dead_recipient_domain(result.diagnostic):
        return rules.SENDER_SIDE
    if by_text in (None, rules.HARD) and smtp_phase(result.diagnostic) == "mail":
        # Refused before any recipient was named: "unknown" here is our own sender address.
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
    text = result.diagnostic
    # A 4.x.x code is a temporary failure whatever the wording says about the address.
    if result.status.startswith("4") or (not result.status and result.reply_code.startswith("4")):
        return False
    if DEAD_AT_DATA_RE.search(text) or rules.DEAD_DOMAIN_RE.search(text):
        return True
    phase = smtp_phase(text)
    if phase:
        return phase == "rcpt"
    subject = result.status.split(".")[1] if result.status else ""
    if subject in NOT_ADDRESS_SUBJECTS:
        return False
    # X.1.x: the server itself says the address is the problem; X.5.x: the refusal was its
    # answer to a command in the SMTP dialogue, and the only one that names a recipient is RCPT.
    # Otherwise (no code or X.0.x, no phase) only a verdict of the recipient's own system makes
    # it hard: the words alone do not say who wrote them or when. A filter answers "user
    # unknown" after DATA, a gateway passes a refusal on without its reply, and a sending MTA
    # words its own summary (Gmail's "Address not found" also heads DNS errors, and its "the
    # address couldn't be found" a carrier's filter). Such a result is soft, and repeats still
    # suppress the address under the soft rule.
    return subject in ("1", "5") or bool(LOCAL_VERDICT_RE.search(text))


def _names_dead_recipient_domain(text: str) -> bool:
    # Sendmail answers a recipient domain's null MX with "550 Host does not accept mail" under
    # 5.7.27, the code RFC 7505 gives the sender's null MX: when the words speak of a dead
    # domain and never of the sender, they describe the recipient's side.
    return bool(rules.DEAD_DOMAIN_RE.search(text or "")) and not SENDER_WORD_RE.search(text or "")


def smtp_phase(text: str) -> str:
    """ "mail", "rcpt" or "data" when the text says which command a refusal answered, else ""."""
    # The last command first: a transcript shows MAIL FROM and RCPT TO accepted before the
    # DATA that was refused.
    if AFTER_DATA_RE.search(text or ""):
        return "rcpt" if PIPELINED_RCPT_RE.search(text) else "data"
    if AT_RCPT_RE.search(text or ""):
        return "rcpt"
    return "mail" if AT_MAIL_RE.search(text or "") else ""


def classify_text(text: str) -> str | None:
    return rules.match_text((text or "")[:MAX_DIAGNOSTIC])


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
