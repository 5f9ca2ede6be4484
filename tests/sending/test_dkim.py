"""Every signature mailpanel makes must verify with dkimpy, the reference implementation."""

from __future__ import annotations

import dkim
import pytest

from sending import dkim as signing

RSA_PEM = signing.generate_private_key(signing.RSA_SHA256)
ED_PEM = signing.generate_private_key(signing.ED25519_SHA256)

MESSAGE = (
    b"From: News <news@example.com>\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: A  folded\r\n  subject line\r\n"
    b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <abc@example.com>\r\n"
    b"List-Unsubscribe: <https://mail.example.com/s/u/x>, <mailto:u@example.com>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Not-Signed: whatever\r\n"
    b"\r\n"
    b"Hello  there,   \r\n\r\nthis is the body.\t\r\n\r\n\r\n"
)


def dns_for(records: dict[str, str]):  # noqa: ANN201
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    return lookup


@pytest.mark.parametrize(
    ("pem", "algorithm"), [(RSA_PEM, b"rsa-sha256"), (ED_PEM, b"ed25519-sha256")]
)
def test_signature_verifies_with_dkimpy(pem: str, algorithm: bytes) -> None:
    key = signing.SigningKey.from_pem("example.com", "mp1", pem)
    signed = signing.sign(MESSAGE, [key])
    assert b"a=" + algorithm in signed
    records = {"mp1._domainkey.example.com": signing.dns_record(pem)}
    assert dkim.verify(signed, dnsfunc=dns_for(records))


def test_rsa_and_ed25519_together_both_verify() -> None:
    rsa_key = signing.SigningKey.from_pem("example.com", "rsa1", RSA_PEM)
    ed_key = signing.SigningKey.from_pem("example.com", "ed1", ED_PEM)
    signed = signing.sign(MESSAGE, [rsa_key, ed_key])
    records = {
        "rsa1._domainkey.example.com": signing.dns_record(RSA_PEM),
        "ed1._domainkey.example.com": signing.dns_record(ED_PEM),
    }
    verifier = dkim.DKIM(signed)
    assert verifier.verify(idx=0, dnsfunc=dns_for(records))
    assert verifier.verify(idx=1, dnsfunc=dns_for(records))


def test_a_changed_body_or_added_from_breaks_the_signature() -> None:
    key = signing.SigningKey.from_pem("example.com", "mp1", RSA_PEM)
    signed = signing.sign(MESSAGE, [key])
    records = {"mp1._domainkey.example.com": signing.dns_record(RSA_PEM)}
    assert not dkim.verify(
        signed.replace(b"this is the body", b"this is a body"), dnsfunc=dns_for(records)
    )
    head, _, body = signed.partition(b"\r\n\r\n")
    extra_from = head + b"\r\nFrom: evil@example.net\r\n\r\n" + body
    assert not dkim.verify(extra_from, dnsfunc=dns_for(records))


def test_relaxed_canonicalisation_matches_the_rfc_example() -> None:
    # RFC 6376 3.4.5.
    assert signing.canonical_header(b"A", b" X\r\n") == b"a:X"
    assert signing.canonical_header(b"B ", b" Y\t\r\n\tZ  \r\n") == b"b:Y Z"
    assert signing.canonical_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert signing.canonical_body(b"") == b""


def test_body_canonicalisation_agrees_with_dkimpy_on_whitespace_of_every_shape() -> None:
    # The fast path skips work when there is nothing to reduce; dkimpy's canonicalisation of
    # the same bodies is the reference for every mix of spaces, tabs and line ends.
    from dkim.canonicalization import Relaxed

    pieces = [b" ", b"\t", b"  ", b"word", b"\r\n", b" \t ", b"x"]
    bodies = [
        b"".join(pieces[(seed * 7 + i * 3) % len(pieces)] for i in range(seed % 23))
        for seed in range(400)
    ]
    bodies += [b"Hello there\r\nplain line\r\n", b"trailing \r\n\r\n", b"\t\r\n"]
    for body in bodies:
        body = body if body.endswith(b"\r\n") or not body else body + b"\r\n"
        assert signing.canonical_body(body) == Relaxed.canonicalize_body(body), body
