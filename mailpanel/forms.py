from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from mailpanel.models import User, time_zone_choices


class AccountForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=time_zone_choices)

    class Meta:
        model = User
        fields = (
            "first_name",
            "last_name",
            "email",
            "time_zone",
            "default_from_name",
            "default_from_email",
            "postal_address",
        )
        help_texts = {
            "default_from_name": "Used as the sender name of new lists and campaigns.",
            "default_from_email": "Used as the sender address of new lists and campaigns.",
        }
        widgets = {"postal_address": forms.Textarea(attrs={"rows": 3})}

    def clean_default_from_name(self) -> str:
        # The sender name ends up in a From: header; a line break there would add a header.
        name = self.cleaned_data["default_from_name"]
        if "\r" in name or "\n" in name:
            raise forms.ValidationError("The sender name cannot contain line breaks.")
        return name.strip()


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
