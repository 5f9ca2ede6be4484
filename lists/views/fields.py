"""Custom field definitions of the user's account: list, add, edit, delete.

Fields belong to the account (the signed-in user); another account's field is a 404.
A field is addressed by its key, unique per account.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from lists.models import CustomField

# Keys are used in merge tags ({{ subscriber.fields.<key> }}) and segment JSON, so they
# are identifiers: a hyphen or a leading digit would not work as a template attribute.
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
MAX_CHOICES = 100


class CustomFieldForm(forms.ModelForm):
    choices_text = forms.CharField(
        label="Choices",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For a choice field: one choice per line.",
    )

    class Meta:
        model = CustomField
        fields = ["key", "label", "type", "in_forms", "position"]
        help_texts = {
            "key": "Lowercase letters, digits and _; starts with a letter. "
            "Used in merge tags as {{ subscriber.fields.<key> }}. Cannot change later.",
            "type": "Values are checked against the type. Cannot change later.",
            "position": "Fields are shown in this order (smallest first).",
        }

    def __init__(self, *args: object, account: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        if self.instance.pk:
            # Stored values were validated for this key and type; changing either would
            # orphan or mistype them, so they are fixed once the field exists.
            self.fields["key"].disabled = True
            self.fields["type"].disabled = True
            self.initial["choices_text"] = "\n".join(map(str, self.instance.choices))

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].strip()
        if self.instance.pk:
            return self.instance.key
        if not KEY_PATTERN.match(key):
            raise forms.ValidationError(
                "Use lowercase letters, digits and _, starting with a letter (at most 50)."
            )
        if CustomField.objects.filter(account=self.account, key=key).exists():
            raise forms.ValidationError("You already have a field with this key.")
        return key

    def clean(self) -> dict:
        cleaned = super().clean()
        field_type = cleaned.get("type") or self.instance.type
        lines = [line.strip() for line in cleaned.get("choices_text", "").splitlines()]
        choices = list(dict.fromkeys(line for line in lines if line))
        if field_type == CustomField.Type.CHOICE:
            if not choices:
                self.add_error("choices_text", "A choice field needs at least one choice.")
            elif len(choices) > MAX_CHOICES:
                self.add_error("choices_text", f"At most {MAX_CHOICES} choices.")
            elif any(len(choice) > 200 for choice in choices):
                self.add_error("choices_text", "A choice is at most 200 characters long.")
            cleaned["choices"] = choices
        else:
            cleaned["choices"] = []
        return cleaned

    def save(self, commit: bool = True) -> CustomField:
        field = super().save(commit=False)
        field.account = self.account
        field.choices = self.cleaned_data["choices"]
        if commit:
            field.save()
        return field


def _get_field(request: HttpRequest, key: str) -> CustomField:
    return get_object_or_404(CustomField.objects.visible_to(request.user), key=key)


@login_required
def field_index(request: HttpRequest) -> HttpResponse:
    custom_fields = CustomField.objects.visible_to(request.user).order_by("position", "id")
    return render(request, "lists/field_index.html", {"custom_fields": custom_fields})


@login_required
@require_http_methods(["GET", "POST"])
def field_create(request: HttpRequest) -> HttpResponse:
    form = CustomFieldForm(request.POST or None, account=request.user)
    if request.method == "POST" and form.is_valid():
        field = form.save()
        messages.success(request, f"Field “{field.label}” added.")
        return redirect("lists:field-index")
    return render(request, "lists/field_form.html", {"form": form, "field": None})


@login_required
@require_http_methods(["GET", "POST"])
def field_edit(request: HttpRequest, key: str) -> HttpResponse:
    field = _get_field(request, key)
    form = CustomFieldForm(request.POST or None, instance=field, account=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Field “{field.label}” saved.")
        return redirect("lists:field-index")
    return render(request, "lists/field_form.html", {"form": form, "field": field})


@login_required
@require_http_methods(["GET", "POST"])
def field_delete(request: HttpRequest, key: str) -> HttpResponse:
    field = _get_field(request, key)
    if request.method == "POST":
        # Subscribers' stored values stay in their JSON (rewriting millions of rows is not
        # worth a request); they are unused until a field with this key exists again.
        field.delete()
        messages.success(request, f"Field “{field.label}” deleted.")
        return redirect("lists:field-index")
    return render(request, "lists/field_confirm_delete.html", {"field": field})
