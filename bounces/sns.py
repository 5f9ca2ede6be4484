"""Verify the signature of an Amazon SNS message (what SES publishes its events through).

docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html: the message's fields
are joined in a fixed order and signed with the key of a certificate SNS serves from its own
host. anymail checks only the headers; this checks that AWS sent the message.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from urllib.parse import urlsplit
from urllib.request import urlopen

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class InvalidSNSMessage(Exception):
    pass


def verify(message: dict) -> None:
    """Raises InvalidSNSMessage unless the message carries a valid SNS signature."""
    fields = SIGNED_FIELDS.get(message.get("Type", ""))
    algorithm = HASHES.get(str(message.get("SignatureVersion", "")))
    if fields is None or algorithm is None:
        raise InvalidSNSMessage("unknown SNS message type or signature version")
    signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
    try:
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
        key = _public_key(message.get("SigningCertURL", ""))
        key.verify(signature, signed.encode(), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError) as exc:
        raise InvalidSNSMessage(f"bad SNS signature: {exc or type(exc).__name__}") from exc


def is_sns_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(SNS_HOST.fullmatch(parts.hostname or ""))


# SNS rotates its certificate rarely; fetching it for every notification would be wasteful.
@lru_cache(maxsize=16)
def _public_key(url: str) -> rsa.RSAPublicKey:
    if not is_sns_url(url) or not urlsplit(url).path.endswith(".pem"):
        raise InvalidSNSMessage(f"SigningCertURL {url!r} is not an SNS certificate")
    with urlopen(url, timeout=10) as response:  # noqa: S310 (https to SNS, checked above)
        certificate = x509.load_pem_x509_certificate(response.read())
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSNSMessage("SNS certificate without an RSA key")
    return key
