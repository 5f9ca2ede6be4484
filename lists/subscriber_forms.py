"""Forms of the subscriber pages and the account blocklist page.

They validate and normalise only: saving goes through lists.subscriptions and
lists.blocklist in the views.
"""

from __future__ import annotations

from django import forms

from lists import addresses, fields, preferences
from lists.models import CustomField, Subscriber, Subscription

FIELD_PREFIX = "field_"
# One request adds the pasted entries one by one; larger lists belong in an import.
MAX_PASTE_LINES = 5000


def _form_field(field: CustomField) -> forms.Field:
    """A text-like input per type; the value itself is checked by lists.fields."""
    label = field.label
    if field.type == CustomField.Type.NUMBER:
        return forms.CharField(
            label=label, required=False, widget=forms.TextInput(attrs={"inputmode": "decimal"})
        )
    if field.type == CustomField.Type.DATE:
        return forms.CharField(
            label=label, required=False, widget=forms.DateInput(attrs={"type": "date"})
        )
    if field.type == CustomField.Type.BOOLEAN:
        # Three states: a checkbox cannot say "not known".
        return forms.ChoiceField(
            label=label, required=False, choices=[("", "—"), ("yes", "Yes"), ("no", "No")]
        )
    if field.type == CustomField.Type.CHOICE:
        choices = [("", "—")] + [(str(c), str(c)) for c in field.choices]
        return forms.ChoiceField(label=label, required=False, choices=choices)
    return forms.CharField(label=label, required=False, max_length=2000)


def _initial(field: CustomField, value: object) -> object:
    if field.type == CustomField.Type.BOOLEAN and isinstance(value, bool):
        return "yes" if value else "no"
    return value


class SubscriberForm(forms.Form):
    """E-mail, name and the account's custom fields.

    ``cleaned_data["email"]`` is the normalised address and ``field_values`` the
    validated custom field values (empty ones left out).
    """

    email = forms.CharField(label="E-mail address", max_length=254)
    name = forms.CharField(label="Name", max_length=200, required=False)

    def __init__(
        self,
        *args: object,
        custom_fields: list[CustomField],
        subscriber: Subscriber | None = None,
        **kwargs: object,
    ) -> None:
        if subscriber is not None and "initial" not in kwargs:
            initial: dict[str, object] = {"email": subscriber.email, "name": subscriber.name}
            for field in custom_fields:
                if field.key in subscriber.fields:
                    initial[FIELD_PREFIX + field.key] = _initial(
                        field, subscriber.fields[field.key]
                    )
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.custom_fields = custom_fields
        self.subscriber = subscriber
        self.field_values: dict[str, object] = {}
        for field in custom_fields:
            self.fields[FIELD_PREFIX + field.key] = _form_field(field)

    def clean_email(self) -> str:
        try:
            email = addresses.normalise(self.cleaned_data["email"])
        except addresses.InvalidAddress as exc:
            raise forms.ValidationError(f"This is not a usable address: {exc}.") from exc
        if self.subscriber is not None:
            taken = (
                Subscriber.objects.filter(account_id=self.subscriber.account_id)
                .with_email(email)
                .exclude(id=self.subscriber.id)
                .exists()
            )
            if taken:
                raise forms.ValidationError(
                    f"Another subscriber of this account already has the address {email}."
                )
            # Renaming someone to an erased address would bring the erased person back.
            renamed = addresses.comparison_key(email) != addresses.comparison_key(
                self.subscriber.email
            )
            if renamed and preferences.is_suppressed(self.subscriber.account_id, email):
                raise forms.ValidationError(preferences.ERASED_ERROR.format(email=email))
        return email

    def custom_field_names(self) -> list[str]:
        return [FIELD_PREFIX + field.key for field in self.custom_fields]

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        data = {
            field.key: cleaned.get(FIELD_PREFIX + field.key)
            for field in self.custom_fields
            if FIELD_PREFIX + field.key in cleaned
        }
        values, errors = fields.clean_values(self.custom_fields, data)
        for key, message in errors.items():
            self.add_error(FIELD_PREFIX + key, message)
        self.field_values = values
        return cleaned


class AddSubscriberForm(SubscriberForm):
    status = forms.ChoiceField(
        label="Status",
        choices=[
            (Subscription.Status.CONFIRMED, "Confirmed: I have this person's consent"),
            (Subscription.Status.PENDING, "Pending: not confirmed yet (no mail is sent from here)"),
        ],
        initial=Subscription.Status.CONFIRMED,
        widget=forms.RadioSelect,
        help_text=(
            "Adding someone as confirmed means you vouch that they agreed to receive "
            "this list's mail."
        ),
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason (optional)", max_length=300, required=False)


class ResubscribeForm(forms.Form):
    vouch = forms.BooleanField(
        label="I confirm that this person asked to receive this list's mail again.",
        required=True,
        error_messages={"required": "Tick this box to confirm you have their consent."},
    )


class BlocklistPasteForm(forms.Form):
    entries = forms.CharField(
        label="Addresses and domains",
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "ann@example.org\nspam.example"}),
        help_text=(
            "One per line, or separated by commas. A line without '@' (or starting with '@') "
            f"blocks the whole domain. Up to {MAX_PASTE_LINES:,} entries at once."
        ),
    )
    reason = forms.CharField(label="Reason (optional)", max_length=300, required=False)

    def clean_entries(self) -> str:
        text = self.cleaned_data["entries"]
        lines = [
            part for part in text.replace(",", "\n").replace(";", "\n").splitlines() if part.strip()
        ]
        if len(lines) > MAX_PASTE_LINES:
            raise forms.ValidationError(
                f"{len(lines):,} entries: paste at most {MAX_PASTE_LINES:,} at once."
            )
        return text


class BlocklistRemoveForm(forms.Form):
    kind = forms.ChoiceField(choices=[("address", "Address"), ("domain", "Domain")])
    value = forms.CharField(max_length=254)
