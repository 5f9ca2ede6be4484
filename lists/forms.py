"""Forms of the list pages: a list's settings, delegation and bulk actions."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from lists.models import BulkJob, ListRole, MailingList


class MailingListForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = [
            "name",
            "description",
            "from_name",
            "from_email",
            "reply_to",
            "double_opt_in",
            "track_opens",
            "track_clicks",
            "postal_address",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "postal_address": forms.Textarea(attrs={"rows": 3}),
        }


class GrantForm(forms.Form):
    user = forms.CharField(
        label="User name or e-mail", max_length=254, help_text="Someone with a mailpanel account."
    )
    role = forms.ChoiceField(
        choices=ListRole.Role.choices,
        help_text="Manager: everything on this list except deleting it or changing roles. "
        "Viewer: read only.",
    )


class RevokeForm(forms.Form):
    role_id = forms.IntegerField(widget=forms.HiddenInput)


class BulkActionForm(forms.Form):
    SCOPES = [("selected", "The selected subscribers"), ("filter", "All matching this filter")]

    action = forms.ChoiceField(choices=BulkJob.Action.choices)
    scope = forms.ChoiceField(choices=SCOPES, initial="selected")
    target = forms.ModelChoiceField(
        queryset=MailingList.objects.none(),
        to_field_name="uuid",
        required=False,
        label="Other list",
        empty_label="(for add to / remove from another list)",
    )

    def __init__(self, *args: object, targets: QuerySet[MailingList], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = targets

    def clean(self) -> dict[str, object]:
        data = super().clean()
        # Any integers are accepted; lists.bulk keeps only the ids on the list.
        data["ids"] = ids_from(self.data)
        if data.get("scope") == "selected" and not data["ids"]:
            raise forms.ValidationError("Select some subscribers, or choose all matching.")
        return data


def ids_from(data: object) -> list[int]:
    """The posted subscriber ids that are integers (the choice field cannot list them)."""
    values = data.getlist("ids") if hasattr(data, "getlist") else []
    return [int(value) for value in values if str(value).isdigit()][:100_000]
