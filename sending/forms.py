from __future__ import annotations

import re

from django import forms

from lists import addresses
from sending.models import SendingDomain

# A DNS label: the selector is published at <selector>._domainkey.<domain>.
SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class SendingDomainForm(forms.Form):
    domain = forms.CharField(max_length=253, help_text="The part after @ of your sender address.")
    selector = forms.CharField(
        max_length=60,
        initial="mailpanel",
        help_text="The DKIM selector: the record goes at <selector>._domainkey.<domain>.",
    )
    ed25519 = forms.BooleanField(
        required=False,
        label="Also sign with Ed25519",
        help_text="A second, modern signature (RFC 8463) next to RSA-2048.",
    )

    def __init__(self, *args: object, account: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_domain(self) -> str:
        try:
            domain = addresses.normalise_domain(self.cleaned_data["domain"])
        except addresses.InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc
        if SendingDomain.objects.visible_to(self.account).filter(domain=domain).exists():
            raise forms.ValidationError("You have added this domain already.")
        return domain

    def clean_selector(self) -> str:
        selector = self.cleaned_data["selector"].strip().lower()
        if not SELECTOR.match(selector):
            raise forms.ValidationError("Use letters, digits and hyphens (a DNS label).")
        return selector
