from __future__ import annotations

from django import forms


class LiftForm(forms.Form):
    note = forms.CharField(
        max_length=300,
        help_text="Why mail may go to this address again; kept in the subscription history.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. the subscriber fixed their mailbox"}),
    )
