from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone

MAX_DAYS = 400


class FailureReportForm(forms.Form):
    """A period in the reader's days (both ends included) and, for operators, the scope."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="To (included)")
    everything = forms.BooleanField(
        required=False, label="Every account (operators)", help_text="Leave off for yours only."
    )

    def __init__(self, *args: object, operator: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not operator:
            del self.fields["everything"]

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            raise forms.ValidationError("The period must end on or after its first day.")
        if start and end and (end - start).days > MAX_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {MAX_DAYS} days.")
        return data

    def period(self, tz: datetime.tzinfo) -> tuple[datetime.datetime, datetime.datetime]:
        """[start, end) as aware datetimes: midnight to the midnight after the last day."""
        start = datetime.datetime.combine(self.cleaned_data["start"], datetime.time.min, tzinfo=tz)
        end_day = self.cleaned_data["end"] + datetime.timedelta(days=1)
        return start, datetime.datetime.combine(end_day, datetime.time.min, tzinfo=tz)

    @staticmethod
    def initial_for(tz: datetime.tzinfo) -> dict:
        today = timezone.localdate(timezone=tz)
        return {"start": today - datetime.timedelta(days=29), "end": today}
