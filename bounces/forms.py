from __future__ import annotations

from django import forms

from bounces.models import SuppressionPolicy


class LiftForm(forms.Form):
    note = forms.CharField(
        max_length=300,
        help_text="Why mail may go to this address again; kept in the subscription history.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. the subscriber fixed their mailbox"}),
    )


class SuppressionPolicyForm(forms.ModelForm):
    """An owner's bounce rules. The sender-side alert threshold is the operators' setting."""

    class Meta:
        model = SuppressionPolicy
        fields = [
            "suppress_hard",
            "suppress_complaint",
            "soft_bounce_days",
            "soft_bounce_window_days",
        ]
        labels = {
            "suppress_hard": "Suppress an address at its first hard bounce",
            "suppress_complaint": "Suppress an address at its first complaint",
            "soft_bounce_days": "Soft bounces: suppress after bounces on this many distinct days",
            "soft_bounce_window_days": "...within this many days",
        }
        help_texts = {
            "suppress_hard": "A hard bounce means the address does not exist.",
            "suppress_complaint": "The recipient marked your mail as spam.",
            "soft_bounce_days": f"1 to {SuppressionPolicy.MAX_SOFT_BOUNCE_DAYS}; default "
            f"{SuppressionPolicy.DEFAULT_SOFT_BOUNCE_DAYS}.",
            "soft_bounce_window_days": f"1 to {SuppressionPolicy.MAX_SOFT_BOUNCE_WINDOW_DAYS}, and "
            f"at least the number of days above; default "
            f"{SuppressionPolicy.DEFAULT_SOFT_BOUNCE_WINDOW_DAYS}.",
        }
