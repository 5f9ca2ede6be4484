from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django_ckeditor_5.widgets import CKEditor5Widget

from campaigns import content, designs, freezing
from campaigns.models import Campaign, EmailTemplate
from lists.addresses import InvalidAddress, normalise
from lists.models import MailingList, Segment
from sending import domains
from sending.models import SendingDomain


def sender_addresses(account: object) -> list[str]:
    """Addresses the account may send from: its default and its lists' addresses, and
    only those on its verified sending domains when REQUIRE_VERIFIED_SENDER_DOMAIN is on."""
    addresses = [getattr(account, "default_from_email", "")]
    addresses += MailingList.objects.owned_by(account).values_list("from_email", flat=True)
    seen: dict[str, None] = {}
    for address in addresses:
        if address and address.lower() not in {a.lower() for a in seen}:
            seen[address] = None
    if not domains.verified_sender_required():
        return list(seen)
    verified = set(
        SendingDomain.objects.usable_by(account.pk).values_list("domain", flat=True)  # type: ignore[attr-defined]
    )
    return [a for a in seen if domains.domain_of(a) in verified]


class CampaignForm(forms.ModelForm):
    from_email = forms.ChoiceField(label="Sender address", required=False)

    class Meta:
        model = Campaign
        fields = [
            "name",
            "subject",
            "preheader",
            "from_name",
            "from_email",
            "reply_to",
            "lists",
            "segment",
            "template",
            "body_format",
            "body",
            "text_edited",
            "text_body",
            "track_opens",
            "track_clicks",
            "spread_over_hours",
            "max_per_hour",
            "publish_in_archive",
        ]
        widgets = {
            "lists": forms.CheckboxSelectMultiple,
            "body": forms.Textarea(attrs={"rows": 20, "class": "code"}),
            "text_body": forms.Textarea(attrs={"rows": 10, "class": "code"}),
        }
        labels = {"text_edited": "I edited the plain-text part (do not regenerate it)"}
        help_texts = {
            "spread_over_hours": "Gradual sending: spread the audience over this many hours.",
            "max_per_hour": "Gradual sending: at most this many messages per hour.",
            "preheader": "The short line mail clients show after the subject.",
        }

    def __init__(self, *args: object, account: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        addresses = sender_addresses(account)
        current = self.instance.from_email
        if current and current not in addresses and not domains.verified_sender_required():
            addresses.append(current)
        self.fields["from_email"].choices = [("", "---------")] + [(a, a) for a in addresses]
        if domains.verified_sender_required():
            self.fields["from_email"].help_text = (
                "Only addresses on your verified sending domains (Account settings › "
                "Sending domains) can send campaigns."
            )
        self.fields["lists"].queryset = MailingList.objects.owned_by(account)
        self.fields["segment"].queryset = Segment.objects.filter(account=account)
        self.fields["template"].queryset = EmailTemplate.objects.owned_by(account)
        if self.instance.body_format == Campaign.BodyFormat.WYSIWYG:
            self.fields["body"].widget = CKEditor5Widget(config_name="campaign")
            self.fields["body"].required = False

    def clean_body(self) -> str:
        return self.cleaned_data.get("body") or ""

    def clean(self) -> dict:
        data = super().clean()
        old_format = self.instance.body_format
        new_format = data.get("body_format") or old_format
        body = data.get("body", "")
        if new_format != old_format:
            # The body was written in the editor for the old format.
            body = content.convert(body, old_format, new_format)
        elif new_format == Campaign.BodyFormat.WYSIWYG:
            body = content.clean_editor_html(body)
        data["body"] = body
        probe = Campaign(
            account=self.account,
            subject=data.get("subject", ""),
            body=body,
            body_format=new_format,
            template=data.get("template"),
            text_body=data.get("text_body", ""),
            text_edited=data.get("text_edited", False),
        )
        for error in freezing.check(probe):
            self.add_error(None, error)
        return data

    def save(self, commit: bool = True) -> Campaign:
        campaign = super().save(commit=False)
        campaign.account = self.account
        if not campaign.text_edited:
            campaign.text_body = freezing.render_frozen(campaign)[1]
        if commit:
            campaign.save()
            self.save_m2m()
        return campaign


class EmailTemplateForm(forms.ModelForm):
    class Meta:
        model = EmailTemplate
        fields = ["name", "html"]
        widgets = {
            "html": forms.Textarea(attrs={"rows": 30, "class": "code", "spellcheck": "false"})
        }

    def clean_html(self) -> str:
        html = self.cleaned_data["html"]
        for error in designs.check_layout(html):
            self.add_error("html", error)
        return html


class NewTemplateForm(forms.Form):
    name = forms.CharField(max_length=200)
    start_from = forms.ChoiceField(choices=list(designs.STARTING.items()))


class ScheduleForm(forms.Form):
    when = forms.ChoiceField(choices=[("now", "Now"), ("later", "At a date and time")])
    send_at = forms.DateTimeField(
        required=False,
        label="Date and time",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("when") == "later" and not data.get("send_at"):
            self.add_error("send_at", "Choose when to send.")
        return data

    def local_send_at(self) -> dt.datetime | None:
        """The naive local time entered, or None for now."""
        if self.cleaned_data["when"] == "now":
            return None
        value = self.cleaned_data["send_at"]
        # The form field makes it aware in the active zone; the caller converts explicitly.
        return value.replace(tzinfo=None)


class TestSendForm(forms.Form):
    addresses = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Up to 10 addresses, one per line or separated by commas.",
    )

    def clean_addresses(self) -> list[str]:
        raw = self.cleaned_data["addresses"].replace(",", "\n").split()
        if len(raw) > 10:
            raise ValidationError("At most 10 addresses.")
        addresses = []
        for item in raw:
            try:
                addresses.append(normalise(item))
            except InvalidAddress as exc:
                raise ValidationError(f"{item}: {exc}") from None
        if not addresses:
            raise ValidationError("Enter at least one address.")
        return addresses


class AttachmentForm(forms.Form):
    file = forms.FileField()
