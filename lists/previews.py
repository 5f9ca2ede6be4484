"""The owner's previews of a signup form: signed preview links, and posts that save nothing.

The form builder frames the three embeds (plain HTML, script, hosted page) in sandboxed
iframes. A sandboxed frame has an opaque origin, so the owner's session cookie does not
reach the posts and fetches made inside it: the owner's access travels in a signed,
expiring token in the preview URLs instead, and only the builder's pages (owner only)
make one. A preview serves the form whether it is enabled or not (the public endpoints
still refuse a disabled form), and a post to it is validated like a real signup but
creates no subscriber, mails nobody and uses up no rate limit.
"""

from __future__ import annotations

from django.core import signing as django_signing
from django.core.exceptions import ValidationError

from lists import signup
from lists.models import SignupForm

SALT = "lists.previews"
# Long enough for a builder page left open over a working day.
MAX_AGE_SECONDS = 24 * 3600
NOTE = "Preview: nothing was saved and no mail was sent."


def token_for(form: SignupForm) -> str:
    """A preview token for the form; give it only to someone who may edit the form."""
    return django_signing.dumps(str(form.uuid), salt=SALT)


def form_for(token: str) -> SignupForm | None:
    """The form a valid, unexpired preview token names, enabled or not; else None."""
    try:
        form_uuid = django_signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except (django_signing.BadSignature, ValueError, TypeError, UnicodeError):
        return None
    if not isinstance(form_uuid, str):
        return None
    try:
        return SignupForm.objects.filter(uuid=form_uuid).first()
    except ValidationError:  # not a UUID: only a token signed with a leaked key could say so
        return None


def check(form: SignupForm, data: object) -> signup.SignupResult:
    """What a real signup post would answer about the values, without acting on them.

    Only the form's own rules (fields, consent, list choice) apply; the abuse controls
    (stamp, honeypot, rate limits, DNS, blocklist) guard real signups and are skipped.
    """
    lists = signup.form_lists(form)
    if not lists:
        return signup.SignupResult(400, {signup.NON_FIELD: ["This form has no lists yet."]})
    _clean, errors = signup.validate(form, data, lists)
    if errors:
        return signup.SignupResult(400, errors)
    return signup.SignupResult(message=signup.result_message(form, lists))
