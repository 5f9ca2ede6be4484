"""The account blocklist page: entries of the account (editable) and global ones (read only)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lists import blocklist
from lists.models import BlocklistEntry, Subscriber
from lists.subscriber_forms import BlocklistPasteForm, BlocklistRemoveForm

ENTRIES_PER_PAGE = 50
SUBSCRIBERS_PER_PAGE = 50


def _blocked_subscribers(account: object):  # noqa: ANN202
    return blocklist.annotate_email_key(Subscriber.objects.filter(account=account)).filter(
        blocklist.blocked_subscribers_q()
    )


@login_required
def blocklist_index(request: HttpRequest) -> HttpResponse:
    form = BlocklistPasteForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = blocklist.add_entries(
            form.cleaned_data["entries"],
            account=request.user,
            reason=form.cleaned_data["reason"],
            actor=request.user,
        )
        # The report is shown once, on this response; the form starts empty again.
        form = BlocklistPasteForm()
    query = request.GET.get("q", "").strip()
    entries = BlocklistEntry.objects.visible_to(request.user).order_by("value", "kind", "id")
    if query:
        entries = entries.filter(value__icontains=query.lower())
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "result": result,
        "query": query,
        "page_obj": page,
        "entries": page.object_list,
        "blocked_count": _blocked_subscribers(request.user).count(),
        "remove_form": BlocklistRemoveForm(),
    }
    return render(request, "lists/blocklist_index.html", context)


@login_required
@require_POST
def blocklist_remove(request: HttpRequest) -> HttpResponse:
    # Entries are addressed by (kind, value), unique per account: no ids in URLs, and a
    # global entry or another account's entry is never editable by the user.
    form = BlocklistRemoveForm(request.POST)
    if form.is_valid():
        deleted, _ = (
            BlocklistEntry.objects.editable_by(request.user)
            .filter(kind=form.cleaned_data["kind"], value=form.cleaned_data["value"])
            .delete()
        )
        if deleted:
            messages.success(request, f"Removed {form.cleaned_data['value']} from the blocklist.")
        else:
            messages.error(request, "That entry is not on your blocklist.")
    else:
        messages.error(request, "That entry is not on your blocklist.")
    return redirect("lists:blocklist")


@login_required
def blocklist_subscribers(request: HttpRequest) -> HttpResponse:
    """The account's subscribers that an entry (account or global) currently blocks."""
    # Keyset by id: the account may hold millions of subscribers.
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        after = 0
    rows = list(
        _blocked_subscribers(request.user)
        .filter(id__gt=after)
        .order_by("id")
        .only("id", "uuid", "email", "name", "created_at")[: SUBSCRIBERS_PER_PAGE + 1]
    )
    has_next = len(rows) > SUBSCRIBERS_PER_PAGE
    rows = rows[:SUBSCRIBERS_PER_PAGE]
    next_url = f"?after={rows[-1].id}" if has_next else ""
    return render(
        request,
        "lists/blocklist_subscribers.html",
        {
            "subscribers": rows,
            "page_obj": {"next_url": next_url},
            "is_first_page": not after,
        },
    )
