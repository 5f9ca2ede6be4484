"""Who may see and change a mailing list: the one access helper and delegation.

Every panel view that works on a list (its subscribers, segments, imports, exports)
fetches it through :func:`get_list_for_user`::

    from lists.access import get_list_for_user

    mailing_list, role = get_list_for_user(request, list_uuid)              # read
    mailing_list, role = get_list_for_user(request, list_uuid, write=True)  # change
    mailing_list, role = get_list_for_user(request, list_uuid, owner_only=True)

- a list the user can not see (not the owner, no role) is a 404, so ids cannot be probed;
- ``write=True``: a viewer gets a 403 (PermissionDenied); owner and manager pass;
- ``owner_only=True``: anyone but the owner gets a 403 (deleting a list, delegation).

``role`` is ``"owner"``, ``"manager"`` or ``"viewer"``; :func:`can_edit` tells whether
a role may change things (for showing or hiding buttons in templates).
"""

from __future__ import annotations

import uuid as uuid_module

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from lists.models import ListRole, MailingList

OWNER = "owner"
MANAGER = ListRole.Role.MANAGER.value
VIEWER = ListRole.Role.VIEWER.value


class DelegationError(ValueError):
    """A grant that cannot be made; the message is shown to the owner."""


def _user_of(request_or_user: object) -> object:
    return getattr(request_or_user, "user", request_or_user)


def with_roles(queryset: QuerySet[MailingList], user: object) -> QuerySet[MailingList]:
    """Annotates ``granted_role`` (the user's delegated role, or None) in the same query."""
    granted = ListRole.objects.filter(mailing_list=OuterRef("pk"), user=user).values("role")[:1]
    return queryset.annotate(granted_role=Subquery(granted))


def role_from_annotation(mailing_list: MailingList, user: object) -> str:
    if mailing_list.owner_id == getattr(user, "pk", None):
        return OWNER
    return mailing_list.granted_role  # type: ignore[attr-defined]


def can_edit(role: str | None) -> bool:
    return role in (OWNER, MANAGER)


def get_list_for_user(
    request_or_user: object,
    list_uuid: uuid_module.UUID | str,
    *,
    write: bool = False,
    owner_only: bool = False,
) -> tuple[MailingList, str]:
    """Returns (mailing_list, role) for a list the user may see.

    Raises Http404 when the user has no access at all, PermissionDenied when
    ``write`` is asked of a viewer or ``owner_only`` of anyone but the owner.
    One query.
    """
    user = _user_of(request_or_user)
    try:
        lists = MailingList.objects.visible_to(user).filter(uuid=list_uuid)
        mailing_list = with_roles(lists.select_related("owner"), user).first()
    except (ValueError, ValidationError):
        mailing_list = None
    if mailing_list is None:
        raise Http404("No such list")
    role = role_from_annotation(mailing_list, user)
    if owner_only and role != OWNER:
        raise PermissionDenied("Only the list's owner may do this.")
    if write and not can_edit(role):
        raise PermissionDenied("You can view this list but not change it.")
    return mailing_list, role


def find_user(identifier: str) -> object:
    """The one active user with that user name or e-mail address (case-insensitive).

    Raises DelegationError when there is none, or the address is ambiguous.
    """
    identifier = identifier.strip()
    users = list(
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(username__iexact=identifier) | Q(email__iexact=identifier))[:2]
    )
    if len(users) != 1:
        raise DelegationError(f"There is no single user called {identifier!r}.")
    return users[0]


def grant(mailing_list: MailingList, user: object, role: str, *, granted_by: object) -> ListRole:
    """Gives (or changes) the user's role on the list; returns the ListRole.

    Raises DelegationError for the owner themselves or an unknown role.
    The delegate sees the list on their next request: access is read per query.
    """
    if role not in (MANAGER, VIEWER):
        raise DelegationError(f"Unknown role {role!r}.")
    if getattr(user, "pk", None) == mailing_list.owner_id:
        raise DelegationError("The owner already has every right on the list.")
    list_role, _ = ListRole.objects.update_or_create(
        mailing_list=mailing_list, user=user, defaults={"role": role, "granted_by": granted_by}
    )
    return list_role


def revoke(mailing_list: MailingList, list_role_id: int) -> bool:
    """Removes a delegation of this list; returns False when there was none.

    Takes effect at once: nothing caches roles beyond a single request.
    """
    deleted, _ = ListRole.objects.filter(mailing_list=mailing_list, id=list_role_id).delete()
    return bool(deleted)
