from __future__ import annotations

import random
from pathlib import Path

import pytest
from flufl.bounce._detectors import dsn, qmail

from bounces import parse
from bounces.parse import normalise_line_endings, parse_bounce

MESSAGES = Path(__file__).parent / "messages"


def message(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def recipients(parsed: parse.ParsedBounce) -> list[str]:
    return [r.recipient for r in parsed.results]


def test_it_reads_a_plain_rfc3464_dsn():
    parsed = parse_bounce(message("postfix_user_unknown.eml"))  # CRLF line endings

    assert parsed.kind == "dsn"
    (result,) = parsed.results
    assert result.recipient == "gone.reader@recipient.example"
    assert (result.action, result.status, result.reply_code) == ("failed", "5.1.1", "550")
    assert "User unknown in local recipient table" in result.diagnostic
    assert result.remote_mta == "mx1.recipient.example"
    assert result.original_message_id == "<campaign-7.delivery-41@sender.example>"


def test_it_takes_the_verp_token_from_the_envelope_or_the_delivery_headers():
    raw = message("postfix_user_unknown.eml")

    assert parse_bounce(raw).verp_token == "d41.x9Kq"
    assert parse_bounce(raw, "bounces+other.tok@bounce.example.org").verp_token == "other.tok"


def test_it_reads_cr_only_line_endings():
    raw = message("qmail_blocklisted.eml")
    assert b"\n" not in raw  # the fixture is what old Mac tools write

    parsed = parse_bounce(raw)

    assert recipients(parsed) == ["reader@isp.example"]
    assert parsed.results[0].status == "5.7.1"


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_line_endings_do_not_change_the_result(ending):
    lf = message("exchange_mailbox_full.eml")
    assert b"\r" not in lf

    assert parse_bounce(lf.replace(b"\n", ending)) == parse_bounce(lf)


def test_an_mbox_from_line_is_not_taken_for_a_header():
    raw = message("postfix_user_unknown.eml")
    with_separator = b"From MAILER-DAEMON Mon Nov  2 10:00:00 2026\r\n" + raw

    assert normalise_line_endings(with_separator) == normalise_line_endings(raw)
    assert parse_bounce(with_separator) == parse_bounce(raw)


def test_it_reads_a_gmail_notice_that_starts_with_an_mbox_line():
    parsed = parse_bounce(message("gmail_no_such_user.eml"))

    assert recipients(parsed) == ["nobody.here@gmail.example"]
    assert parsed.subject == "Delivery Status Notification (Failure)"
    assert parsed.results[0].status == "5.1.1"


def test_gmail_reply_a_paragraph_below_the_address_is_part_of_the_diagnostic():
    (result,) = parse_bounce(message("gmail_reply_below.eml")).results

    assert result.recipient == "left.long.ago@small-isp.example"
    assert result.status == "5.1.1"
    assert "User unknown" in result.diagnostic


def test_exchange_ndr_names_the_failed_recipient_not_the_original_to_line():
    parsed = parse_bounce(message("exchange2003_not_found.eml"))

    assert recipients(parsed) == ["former.staff@corp2003.example"]
    assert "does not exist" in parsed.results[0].diagnostic


def test_exchange_ndr_with_a_delivery_status_part_keeps_the_readable_wording():
    (result,) = parse_bounce(message("exchange_mailbox_full.eml")).results

    assert result.recipient == "full.box@corp.example"
    assert result.status == "5.2.2"
    assert "mailbox is full" in result.diagnostic


def test_a_failure_sentence_names_the_recipient_even_a_postmaster():
    parsed = parse_bounce(message("dma_host_not_found.eml"))

    assert recipients(parsed) == ["postmaster@vanished.example"]
    # The quoted original headers ("envelope-from") are not part of the explanation.
    assert "envelope-from" not in parsed.results[0].diagnostic


def test_yahoo_and_qmail_style_address_lines():
    parsed = parse_bounce(message("yahoo_host_unknown.eml"))

    assert recipients(parsed) == ["someone@no-such-domain.example"]
    assert parsed.original_message_id == "<campaign-7.delivery-45@sender.example>"


def test_exim_failure_is_read_with_its_smtp_reply():
    (result,) = parse_bounce(message("exim_over_quota.eml")).results

    assert result.recipient == "stuffed@mail.example"
    assert (result.status, result.reply_code) == ("5.2.2", "552")


def test_a_dsn_without_a_usable_address_falls_back_to_x_failed_recipients():
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@relay.example>\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"X-Failed-Recipients: lost@mail.example\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
        b"--B\nContent-Type: text/plain\n\nThe following address(es) failed:\n\n"
        b"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example\n\n"
        b"Action: failed\nFinal-Recipient: rfc822;/var/spool/mail/lost\nStatus: 5.0.0\n\n--B--\n"
    )

    assert recipients(parse_bounce(raw)) == ["lost@mail.example"]


def test_without_any_address_the_returned_copys_single_to_is_the_recipient():
    raw = (
        b"From: MAILER-DAEMON@relay.example\nSubject: Undelivered Mail Returned to Sender\n"
        b"Content-Type: multipart/mixed; boundary=B\n\n"
        b"--B\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        b"--B\nContent-Type: message/rfc822\n\nFrom: news@sender.example\n"
        b"To: only.one@mail.example\nSubject: This week\n\nHello.\n--B--\n"
    )

    assert recipients(parse_bounce(raw)) == ["only.one@mail.example"]


def test_amazon_ses_notification_with_a_folded_line_is_a_complaint():
    parsed = parse_bounce(message("ses_notification_folded.eml"))

    assert parsed.kind == "arf"
    assert parsed.feedback_type == "abuse"
    assert recipients(parsed) == ["grumpy@mailbox.example"]
    assert parsed.original_message_id == "<0100-abcdef>"


@pytest.mark.parametrize(
    ("name", "feedback_type", "recipient"),
    [
        ("arf_abuse.eml", "abuse", "annoyed@isp.example"),
        ("arf_opt_out.eml", "opt-out", "leaving@isp.example"),
        ("arf_auth_failure.eml", "auth-failure", None),
    ],
)
def test_feedback_reports(name, feedback_type, recipient):
    parsed = parse_bounce(message(name))

    assert parsed.kind == "arf"
    assert parsed.feedback_type == feedback_type
    if recipient:
        assert recipients(parsed) == [recipient]


def test_an_autoreply_is_not_a_bounce():
    parsed = parse_bounce(message("autoreply.eml"))

    assert parsed.kind == "autoreply"
    assert recipients(parsed) == ["away@example.net"]


def test_a_delayed_notice_keeps_its_action():
    (result,) = parse_bounce(message("delayed.eml")).results

    assert (result.recipient, result.action, result.status) == (
        "slow@far.example",
        "delayed",
        "4.4.1",
    )


def test_garbage_is_unknown_with_a_reason():
    parsed = parse_bounce(message("garbage.eml"))

    assert parsed.kind == "unknown"
    assert parsed.results == []
    assert parsed.reason


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"From nobody\n"])
def test_an_empty_message_is_unknown(raw):
    parsed = parse_bounce(raw)

    assert (parsed.kind, parsed.results) == ("unknown", [])
    assert parsed.reason == "empty message"


def test_it_never_raises_on_random_bytes():
    rng = random.Random(3464)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        parsed = parse_bounce(b"Content-Type: multipart/report; boundary=x\n\n" + raw)
        assert parsed.kind in parse.KINDS


def _raise(self, msg):
    raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "detector broke")


def test_a_raising_detector_leaves_a_parse_that_says_it_cannot_be_parsed(monkeypatch):
    # A failure notice that only flufl.bounce's detectors could have read.
    raw = b"From: postmaster@relay.example\nSubject: Returned mail\n\nUnreadable.\n"
    for detector in parse.DETECTORS:
        monkeypatch.setattr(detector, "process", _raise)

    parsed = parse_bounce(raw)

    assert (parsed.kind, parsed.results) == ("unknown", [])
    assert parsed.reason.startswith("no recipient or failure found")
    assert "cannot be parsed" in parsed.reason
    assert len(parsed.detector_errors) == len(parse.DETECTORS)
    assert "detector broke" in parsed.detector_errors[0]


def test_one_raising_detector_does_not_stop_the_others(monkeypatch):
    monkeypatch.setattr(dsn.DSN, "process", _raise)
    monkeypatch.setattr(qmail.Qmail, "process", _raise)

    parsed = parse_bounce(message("qmail_blocklisted.eml"))

    assert recipients(parsed) == ["reader@isp.example"]
    assert parsed.detector_errors


def test_recipient_groups_without_a_blank_line_between_them_are_split():
    parsed = parse_bounce(message("aol_groups_unseparated.eml"))

    by_recipient = {r.recipient: r.status for r in parsed.results}
    assert by_recipient == {"stuffed.box@example.net": "5.2.2", "long.gone@example.net": "5.1.1"}


def test_an_old_sendmail_transcript_names_every_failed_recipient_with_its_own_reason():
    parsed = parse_bounce(message("sendmail_v5_transcript.eml"))

    by_recipient = {r.recipient: r.diagnostic for r in parsed.results}
    assert set(by_recipient) == {
        "refused.reader@example.net",
        "reader@gone.example.org",
        "left@example.com",
    }
    assert "Host unknown" not in by_recipient["refused.reader@example.net"]
    assert "Host unknown" in by_recipient["reader@gone.example.org"]
    assert "User unknown" in by_recipient["left@example.com"]


def test_a_wrapped_postfix_reply_keeps_its_rcpt_phase():
    # Postfix starts the wrapped reply line with the same "<address>:" again.
    (result,) = parse_bounce(message("postfix_wrapped_reply.eml")).results

    assert "RCPT TO command" in result.diagnostic


def test_the_returned_copys_message_id_is_not_a_recipient():
    parsed = parse_bounce(message("gateway_no_such_user.eml"))

    assert recipients(parsed) == ["maybe.reader@filtered.example.com"]


def test_a_quoted_to_line_is_not_taken_for_the_recipients_failure():
    # The notice quotes the original header fields before it explains the failure.
    (result,) = parse_bounce(message("messaging_server_quoted_to.eml")).results

    assert "Subject: December news" not in result.diagnostic
    assert "User unknown" in result.diagnostic
    assert result.status == "5.1.1"


def test_a_sendmail_summary_line_keeps_the_dialogue_above_it():
    parsed = parse_bounce(message("sendmail_refused_at_mail_from.eml"))

    (result,) = parsed.results
    assert result.recipient == "careful.reader@strict.example.net"
    assert result.reply_code == "554"
    assert ">>> MAIL From:<news@sender.example>" in result.diagnostic
    assert "No such user here" in result.diagnostic


def test_a_dialogue_belongs_only_to_the_summary_line_right_below_it():
    parsed = parse_bounce(message("sendmail_v5_transcript.eml"))

    by_recipient = {r.recipient: r.diagnostic for r in parsed.results}
    assert "Refused by local policy" in by_recipient["refused.reader@example.net"]
    assert "Refused by local policy" not in by_recipient["reader@gone.example.org"]


def test_a_statement_about_the_mailbox_above_the_list_applies_to_its_recipients():
    raw = message("carrier_account_disabled.eml")
    # A generic headline says the same for every cause: only a mailbox's state is carried over.
    headline = raw.replace(b"The user(s) account is disabled.", b"** Address not found **")

    (stated,) = parse_bounce(raw).results
    (generic,) = parse_bounce(headline).results

    assert "account is disabled" in stated.diagnostic
    assert "550 user unknown" in stated.diagnostic
    assert "Address not found" not in generic.diagnostic


def test_a_notice_saying_delivery_failed_is_a_bounce_whoever_sent_it():
    # No MAILER-DAEMON sender, no null Return-Path, a subject in Japanese.
    parsed = parse_bounce(message("carrier_notice_mailbox_full.eml"))

    assert parsed.kind == "plain"
    (result,) = parsed.results
    assert result.recipient == "stuffed.phone@mobile.example.ne.jp"
    assert "mailbox is full" in result.diagnostic
