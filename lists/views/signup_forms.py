"""Form builder in the panel: an account's signup forms, their embeds, and list texts."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator, URLValidator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from lists import confirmation
from lists.models import CustomField, MailingList, SignupForm
from lists.views.previews import preview_urls
from lists.views.public import PAGE_CSP, embed_snippets, hosted_form_context

http_url = URLValidator(schemes=["http", "https"])
SHOW_CHOICES = [("off", "Not shown"), ("optional", "Optional"), ("required", "Required")]


class SignupFormForm(forms.ModelForm):
    class Meta:
        model = SignupForm
        fields = [
            "name",
            "lists",
            "allow_list_choice",
            "title",
            "button_text",
            "success_text",
            "check_inbox_text",
            "consent_text",
            "redirect_url",
            "confirmed_redirect_url",
            "enabled",
        ]
        widgets = {
            "lists": forms.CheckboxSelectMultiple,
            "success_text": forms.Textarea(attrs={"rows": 2}),
            "check_inbox_text": forms.Textarea(attrs={"rows": 2}),
            "consent_text": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: object, account: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lists"].queryset = MailingList.objects.owned_by(account)
        for name in ("redirect_url", "confirmed_redirect_url"):
            # Only http(s): the stored URL is the only place a signup ever redirects to.
            self.fields[name].validators = [http_url]
            self.fields[name].help_text = "Optional. http:// or https:// only."
        current = {e.get("key"): e for e in (self.instance.field_config or [])}
        self.custom_keys = ["name"] + [
            f"field:{cf.key}" for cf in CustomField.objects.filter(account=account, in_forms=True)
        ]
        labels = {"name": "Name"} | {
            f"field:{cf.key}": cf.label
            for cf in CustomField.objects.filter(account=account, in_forms=True)
        }
        for index, key in enumerate(self.custom_keys):
            entry = current.get(key)
            shown = (
                "off" if entry is None else ("required" if entry.get("required") else "optional")
            )
            self.fields[f"show_{index}"] = forms.ChoiceField(
                label=f"Field: {labels[key]}", choices=SHOW_CHOICES, initial=shown
            )
            self.fields[f"label_{index}"] = forms.CharField(
                label=f"Label of {labels[key]}",
                max_length=100,
                required=False,
                initial=(entry or {}).get("label", labels[key]),
            )

    def clean_lists(self) -> object:
        lists = self.cleaned_data["lists"]
        if not lists:
            raise forms.ValidationError("Choose at least one list.")
        return lists

    def field_config(self) -> list[dict]:
        config = []
        for index, key in enumerate(self.custom_keys):
            shown = self.cleaned_data.get(f"show_{index}", "off")
            if shown == "off":
                continue
            config.append(
                {
                    "key": key,
                    "label": self.cleaned_data.get(f"label_{index}", "").strip(),
                    "required": shown == "required",
                }
            )
        return config


class ListPublicForm(forms.ModelForm):
    class Meta:
        model = MailingList
        fields = ["logo_url", "brand_color", "welcome_enabled"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["logo_url"].validators = [http_url]
        self.fields["brand_color"].validators = [
            RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #2563eb.")
        ]
        texts = self.instance.texts or {}
        for key, default in confirmation.DEFAULT_TEXTS.items():
            self.fields[f"text_{key}"] = forms.CharField(
                label=confirmation.TEXT_LABELS[key],
                required=False,
                max_length=2000,
                initial=texts.get(key, ""),
                widget=forms.Textarea(attrs={"rows": 2, "placeholder": default}),
                help_text=" ".join(
                    [
                        "Empty: the default shown. {list} is replaced by the list's name.",
                        confirmation.TEXT_PLACEHOLDERS.get(key, ""),
                    ]
                ).strip(),
            )

    def save(self, commit: bool = True) -> MailingList:
        mailing_list = super().save(commit=False)
        mailing_list.texts = {
            key: self.cleaned_data[f"text_{key}"].strip()
            for key in confirmation.DEFAULT_TEXTS
            if self.cleaned_data.get(f"text_{key}", "").strip()
        }
        if commit:
            mailing_list.save()
        return mailing_list


def _get_form_for_user(request: HttpRequest, form_id: object, *, write: bool = False) -> SignupForm:
    """A form the user may see (else 404, whatever its id) and, with ``write``, change
    (else 403)."""
    signup_form = get_object_or_404(SignupForm.objects.visible_to(request.user), uuid=form_id)
    if (
        write
        and not SignupForm.objects.editable_by(request.user).filter(id=signup_form.id).exists()
    ):
        raise PermissionDenied("You may only view this form.")
    return signup_form


@login_required
def form_index(request: HttpRequest) -> HttpResponse:
    signup_forms = SignupForm.objects.visible_to(request.user).prefetch_related("lists")
    own_lists = MailingList.objects.owned_by(request.user)
    return render(
        request, "lists/form_index.html", {"signup_forms": signup_forms, "own_lists": own_lists}
    )


@login_required
def form_create(request: HttpRequest) -> HttpResponse:
    form = SignupFormForm(request.POST or None, account=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            signup_form = form.save(commit=False)
            signup_form.account = request.user
            signup_form.field_config = form.field_config()
            signup_form.save()
            form.save_m2m()
        messages.success(request, "Signup form created.")
        return redirect("lists:form-detail", signup_form.uuid)
    return render(request, "lists/form_edit.html", {"form": form, "signup_form": None})


@login_required
def form_edit(request: HttpRequest, form_id: object) -> HttpResponse:
    signup_form = _get_form_for_user(request, form_id, write=True)
    form = SignupFormForm(request.POST or None, instance=signup_form, account=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            signup_form = form.save(commit=False)
            signup_form.field_config = form.field_config()
            signup_form.save()
            form.save_m2m()
        messages.success(request, "Signup form saved.")
        return redirect("lists:form-detail", signup_form.uuid)
    return render(request, "lists/form_edit.html", {"form": form, "signup_form": signup_form})


@login_required
def form_detail(request: HttpRequest, form_id: object) -> HttpResponse:
    signup_form = _get_form_for_user(request, form_id)
    can_edit = SignupForm.objects.editable_by(request.user).filter(id=signup_form.id).exists()
    context = {
        "signup_form": signup_form,
        "snippets": embed_snippets(request, signup_form),
        "lists": signup_form.lists.all(),
        # The previews carry a token that works without a session: editors only.
        "previews": preview_urls(request, signup_form) if can_edit else None,
    }
    return render(request, "lists/form_detail.html", context)


# The live preview of unsaved values: framed by the edit page only, run in a sandbox
# (no scripts, no form posts), so whatever the owner typed cannot act.
PREVIEW_CSP = PAGE_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'") + "; sandbox"


@login_required
@require_POST
@xframe_options_sameorigin
def form_live_preview(request: HttpRequest, form_id: object | None = None) -> HttpResponse:
    """The hosted page as it would look with the posted (unsaved) builder values.

    Nothing is saved. Another account's form is a 404, like every builder page.
    """
    instance = _get_form_for_user(request, form_id, write=True) if form_id else SignupForm()
    # A copy: the form writes the posted values onto its instance, even invalid ones.
    instance = copy.copy(instance)
    form = SignupFormForm(request.POST, instance=instance, account=request.user)
    form.is_valid()  # fills the instance with every valid value; errors are shown on save
    preview = form.instance
    preview.account = request.user
    preview.field_config = form.field_config()
    preview._loaded_lists = list(form.cleaned_data.get("lists") or [])
    context = hosted_form_context(request, preview)
    context["action"] = ""
    response = render(request, "public/form.html", context)
    response["Content-Security-Policy"] = PREVIEW_CSP
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def form_delete(request: HttpRequest, form_id: object) -> HttpResponse:
    signup_form = _get_form_for_user(request, form_id, write=True)
    signup_form.delete()
    messages.success(request, "Signup form deleted. Embeds of it now show “not available”.")
    return redirect("lists:form-index")


@login_required
def list_public(request: HttpRequest, list_id: object) -> HttpResponse:
    """The texts and branding of a list's public pages and subscriber mails."""
    mailing_list = MailingList.objects.visible_to(request.user).filter(uuid=list_id).first()
    if mailing_list is None:
        raise Http404
    if not MailingList.objects.editable_by(request.user).filter(id=mailing_list.id).exists():
        raise PermissionDenied
    form = ListPublicForm(request.POST or None, instance=mailing_list)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Texts and branding saved.")
        return redirect("lists:list-public", mailing_list.uuid)
    return render(
        request, "lists/form_list_public.html", {"form": form, "mailing_list": mailing_list}
    )
