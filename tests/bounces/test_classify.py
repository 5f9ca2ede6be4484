from __future__ import annotations

import json
from pathlib import Path

import pytest

from bounces import rules
from bounces.classify import classify
from bounces.parse import RecipientResult, parse_bounce

MESSAGES = Path(__file__).parent / "messages"
LABELS = [json.loads(line) for line in (MESSAGES / "expected.jsonl").read_text().splitlines()]
ALIASES = {"soft_sender_side": rules.SENDER_SIDE}


def result(
    diagnostic: str = "", status: str = "", reply_code: str = "", **fields
) -> RecipientResult:
    return RecipientResult(
        recipient="reader@mail.example",
        action=fields.pop("action", "failed"),
        status=status,
        reply_code=reply_code,
        diagnostic=diagnostic,
        **fields,
    )


@pytest.mark.parametrize(
    "row", [r for r in LABELS if r["stable"]], ids=lambda r: r["file"].removesuffix(".eml")
)
def test_each_fixture_gets_its_labelled_class(row):
    parsed = parse_bounce((MESSAGES / row["file"]).read_bytes())
    by_recipient = {r.recipient: r for r in parsed.results}
    found = by_recipient.get(row["recipient"]) or parsed.results[0]

    assert classify(found) == ALIASES.get(row["mailpanel_class"], row["mailpanel_class"])


@pytest.mark.parametrize(
    ("diagnostic", "status", "reply_code", "expected"),
    [
        # The address is dead.
        (
            "550 5.1.1 <x>: Recipient address rejected: User unknown (in reply to RCPT TO command)",
            "5.1.1",
            "550",
            rules.HARD,
        ),
        (
            "550 5.1.1 The email account that you tried to reach does not exist.",
            "5.1.1",
            "550",
            rules.HARD,
        ),
        (
            "Host or domain name not found. Name service error for name=x.example type=A",
            "5.4.4",
            "",
            rules.HARD,
        ),
        ("No MX or A records for no-such-domain.example", "", "", rules.HARD),
        ("521 5.3.2 mx.example does not accept mail", "", "521", rules.HARD),
        # A full mailbox is transient (RFC 3463 X.2.2) whatever the 5xx.
        ("552 5.2.2 Mailbox full", "5.2.2", "552", rules.SOFT),
        ("550 5.2.2 user is over quota", "5.2.2", "550", rules.SOFT),
        ("552 Quota exceeded: the mailbox of this user is full", "", "552", rules.SOFT),
        # A 5xx alone says nothing about the address.
        ("550 Requested action not taken", "5.0.0", "550", rules.SOFT),
        ("554 Transaction failed", "", "554", rules.SOFT),
        # The sender was refused.
        (
            "554 5.7.1 Service unavailable; Client host [198.51.100.9] blocked using bl.example",
            "5.7.1",
            "554",
            rules.SENDER_SIDE,
        ),
        (
            "550 5.7.1 Unauthenticated email from sender.example is not accepted due to domain's "
            "DMARC policy",
            "5.7.1",
            "550",
            rules.SENDER_SIDE,
        ),
        (
            "421 4.7.0 Our system has detected an unusual rate of unsolicited mail",
            "4.7.0",
            "421",
            rules.SENDER_SIDE,
        ),
        (
            "550 5.1.8 Domain of sender address news@sender.example does not exist",
            "5.1.8",
            "550",
            rules.SENDER_SIDE,
        ),
        (
            "host mx.example[192.0.2.1] refused to talk to me: 421 Service not available",
            "4.0.0",
            "421",
            rules.SENDER_SIDE,
        ),
        ("550 5.7.1 Message rejected as spam by content filter", "5.7.1", "550", rules.SENDER_SIDE),
    ],
)
def test_status_code_and_wording_together_decide(diagnostic, status, reply_code, expected):
    assert classify(result(diagnostic, status, reply_code)) == expected


def test_user_unknown_after_data_is_a_filter_not_a_dead_address():
    # The server accepted the address at RCPT TO and refused the message after DATA.
    after_data = result("550 Unknown user x (in reply to end of DATA command)", "5.0.0", "550")
    at_rcpt = result("550 Unknown user x (in reply to RCPT TO command)", "5.0.0", "550")

    assert classify(after_data) == rules.SOFT
    assert classify(at_rcpt) == rules.HARD


def test_yahoo_refuses_unknown_users_at_data_and_means_it():
    diagnostic = (
        "554 delivery error: dd This user doesn't have a yahoo.example account "
        "(in reply to end of DATA command)"
    )

    assert classify(result(diagnostic, "5.0.0", "554")) == rules.HARD


def test_user_unknown_under_a_mailbox_or_policy_code_needs_the_rcpt_phase():
    # X.2.x says the mailbox exists, X.7.x is policy: the wording alone does not prove death.
    for status in ("5.2.1", "5.7.1", "5.3.0"):
        unknown_phase = result(f"550 {status} <x>... User Unknown", status, "550")
        at_rcpt = result(f"RCPT TO:<x>: 550 {status} <x>... User Unknown", status, "550")

        assert classify(unknown_phase) == rules.SOFT
        assert classify(at_rcpt) == rules.HARD


def test_a_temporary_code_is_never_hard():
    assert (
        classify(result("450 4.1.1 <x>: User unknown in virtual alias table", "4.1.1", "450"))
        == rules.SOFT
    )
    assert classify(result("450 User unknown", "", "450")) == rules.SOFT


def test_a_recipient_setting_is_soft_even_under_5_1_1():
    assert (
        classify(result("550 5.1.1 Refused due to recipient preferences", "5.1.1", "550"))
        == rules.SOFT
    )


def test_addresses_and_dsn_field_words_are_not_read_as_wording():
    assert (
        classify(result("550 5.1.1 <mailbox.full@x.example>: User unknown", "5.1.1", "550"))
        == rules.HARD
    )
    dsn_fields = "Final-Recipient: rfc822; x@y.example Action: failed Status: 5.2.2"
    assert classify(result(dsn_fields, "5.2.2")) == rules.SOFT


def test_delayed_notices_are_not_failures_unless_the_sender_is_refused():
    timed_out = result("connect to mx.example: Connection timed out", "4.4.1", action="delayed")
    refused = result(
        "450 4.7.1 Client host rejected: cannot find your reverse hostname",
        "4.7.1",
        "450",
        action="delayed",
    )

    greylisted = result(
        "450 4.2.0 <x>: Recipient address rejected: Greylisted, try again later",
        "4.2.0",
        "450",
        action="delayed",
    )

    assert classify(timed_out) == rules.NOT_A_FAILURE
    assert classify(refused) == rules.SENDER_SIDE
    assert classify(greylisted) == rules.NOT_A_FAILURE
    assert classify(result("", "2.0.0", action="delivered")) == rules.NOT_A_FAILURE


@pytest.mark.parametrize(
    ("feedback_type", "expected"),
    [
        ("abuse", rules.COMPLAINT),
        ("fraud", rules.COMPLAINT),
        ("opt-out", rules.UNSUBSCRIBE_REQUEST),
        ("auth-failure", rules.AUTH_FAILURE_REPORT),
        ("not-spam", rules.NOT_A_FAILURE),
        ("something-new", rules.COMPLAINT),
    ],
)
def test_feedback_types(feedback_type, expected):
    assert classify(result(kind="arf", feedback_type=feedback_type)) == expected


def test_autoreplies_and_unsubscribe_requests():
    assert classify(result("Out of office", kind="autoreply")) == rules.NOT_A_FAILURE
    assert classify(result("unsubscribe", kind="unsubscribe")) == rules.UNSUBSCRIBE_REQUEST


def test_an_empty_result_is_soft_not_hard():
    assert classify(RecipientResult()) == rules.SOFT


def test_a_remote_user_unknown_with_no_phase_and_an_unspecific_code_is_soft():
    # Filtering gateways answer "no such user" after DATA too: without the RCPT phase or an
    # X.1.x code the wording alone does not prove a dead address.
    unknown_phase = result("<x@example.com>: 550 No such user here", "5.0.0", "550")
    at_rcpt = result(
        "<x@example.com>: 550 No such user here (in reply to RCPT TO command)", "5.0.0"
    )
    address_code = result("<x@example.com>: 550 5.1.1 No such user here", "5.1.1", "550")

    assert classify(unknown_phase) == rules.SOFT
    assert classify(at_rcpt) == rules.HARD
    assert classify(address_code) == rules.HARD


def test_a_user_unknown_is_hard_when_the_recipients_own_system_says_it_looked():
    local_agent = result("mail.local: unknown user: x 554 <x@example.com>... Service unavailable")
    final_delivery = result("Invalid final delivery userid: x@example.com")
    domino = result("User x (x@example.com) not listed in Domino Directory")
    notes = result("User not listed in public Name & Address Book x@example.com")
    exchange_code = result(
        "x@example.com The recipient name is not recognized MSEXCH:IMS:EX:X 0 (000C05A6) "
        "Unknown Recipient"
    )

    for verdict in (local_agent, final_delivery, domino, notes, exchange_code):
        assert classify(verdict) == rules.HARD, verdict.diagnostic


def test_a_user_unknown_in_words_alone_is_soft():
    # No code, no phase, no reply and no sign of who looked the user up: a gateway passing a
    # refusal on, or a sending MTA's own summary. Gmail's "Address not found" also heads DNS
    # errors, and its "the address couldn't be found" a carrier's filter after DATA.
    gateway = result("x@example.com on 11/10/26 Recipient Not Found MSEXCH:IMC:EXAMPLE")
    summary = result(
        "Your message wasn't delivered to x@example.com because the address couldn't be found.",
        "5.0.0",
    )
    quoted = result("The email account that you tried to reach does not exist.", "5.0.0")
    yahoo_words = result("<x@example.com>: This user doesn't have a example.com account [0]")

    for words in (gateway, summary, quoted, yahoo_words):
        assert classify(words) == rules.SOFT, words.diagnostic


def test_a_dead_domain_needs_no_phase():
    diagnostic = "554 <x@gone.example.org>... 550 Host unknown (Authoritative answer)"

    assert classify(result(diagnostic, "", "554")) == rules.HARD


def test_a_transcript_refusal_after_data_is_a_filter_unless_rcpt_was_pipelined():
    courier = result("mx.example.net [192.0.2.1]: >>> DATA <<< 550 Unknown user x", "5.0.0", "550")
    m_filter = result("-------server message 550 unknown user <x> -------SMTP command DATA")
    pipelined = result(
        ">>> DATA <<< 550 5.0.0 <x@example.net>... User unknown <<< 503 5.0.0 Need RCPT",
        "5.0.0",
        "550",
    )

    assert classify(courier) == rules.SOFT
    assert classify(m_filter) == rules.SOFT
    assert classify(pipelined) == rules.HARD


def test_recipient_address_rejected_is_worded_at_rcpt():
    diagnostic = "550 <x@example.com>: Recipient address rejected: User unknown in local table"

    assert classify(result(diagnostic, "", "550")) == rules.HARD


def test_an_envelope_listing_is_not_the_rcpt_phase():
    # Apache James lists "MAIL FROM: / RCPT TO:" as message details, not as the failed command.
    diagnostic = (
        "Error message below: 550 - Requested action not taken: no such user here "
        "Message details: MAIL FROM: news@example.org RCPT TO: x@example.net"
    )

    assert classify(result(diagnostic, "", "550")) == rules.SOFT


def test_a_protocol_code_answers_the_rcpt_command():
    diagnostic = "550 5.5.0 Requested action not taken: mailbox unavailable"

    assert classify(result(diagnostic, "5.5.0", "550")) == rules.HARD


def test_5_7_27_is_the_recipient_domain_when_the_words_never_name_the_sender():
    recipient_domain = result("550 Host does not accept mail", "5.7.27", "550")
    sender_domain = result("550 5.7.27 Sender address has null MX", "5.7.27", "550")

    assert classify(recipient_domain) == rules.HARD
    assert classify(sender_domain) == rules.SENDER_SIDE


def test_a_refusal_at_mail_from_is_about_the_sender_whatever_it_says():
    # Before RCPT TO no recipient was named: "unknown user" is our own sender address.
    exim = result(
        "SMTP error from remote mail server after MAIL FROM:<news@sender.example>: 550 Unknown user"
    )
    postfix = result("553 No such user here (in reply to MAIL FROM command)", "", "553")
    at_rcpt = result("553 No such user here (in reply to RCPT TO command)", "", "553")

    assert classify(exim) == rules.SENDER_SIDE
    assert classify(postfix) == rules.SENDER_SIDE
    assert classify(at_rcpt) == rules.HARD


def test_a_notice_offering_alternative_causes_commits_to_none():
    hedged = result(
        "The account or domain may not exist, they may be blacklisted, or missing the proper "
        "dns entries."
    )
    blocklisted = result("Your IP address is blacklisted at bl.example.")

    assert classify(hedged) == rules.SOFT
    assert classify(blocklisted) == rules.SENDER_SIDE


def test_a_reply_code_with_no_status_or_known_wording_is_hard_only_for_551():
    # 550 answers policy refusals as often as unknown mailboxes, and 553 answers relaying
    # denied and bad sender syntax; 551 "user not local" speaks of the recipient alone.
    unrecognised = result("550 <x@example.com>... User not exist", "", "550")
    mailbox_name = result("553 <x@example.com>... not permitted here", "", "553")
    not_local = result("551 User not local; please try <x@example.org>", "", "551")

    assert classify(unrecognised) == rules.SOFT
    assert classify(mailbox_name) == rules.SOFT
    assert classify(not_local) == rules.HARD
