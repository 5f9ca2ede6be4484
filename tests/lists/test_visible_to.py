"""One visible_to per model: what the owner, a delegate and a stranger see."""

from __future__ import annotations

import pytest

from lists.access import grant
from lists.models import (
    BlocklistEntry,
    BulkJob,
    CustomField,
    ExportJob,
    ImportJob,
    MailingList,
    Segment,
    SignupForm,
)
from tests.factories import (
    BlocklistEntryFactory,
    CustomFieldFactory,
    MailingListFactory,
    SegmentFactory,
    SignupFormFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def things(owner):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    return {
        "list": mailing_list,
        "field": CustomFieldFactory(account=owner),
        "segment": SegmentFactory(account=owner),
        "entry": BlocklistEntryFactory(account=owner, kind="domain", value="spam.test"),
        "global": BlocklistEntryFactory(account=None, kind="domain", value="global.test"),
        "import": ImportJob.objects.create(
            account=owner, mailing_list=mailing_list, original_name="a.csv"
        ),
        "bulk": BulkJob.objects.create(account=owner, mailing_list=mailing_list, action="delete"),
        "export": ExportJob.objects.create(
            account=owner, mailing_list=mailing_list, filename="a.csv"
        ),
        "form": SignupFormFactory(account=owner, lists=[mailing_list]),
    }


def seen_by(user) -> set[str]:  # noqa: ANN001
    models = {
        "list": MailingList, "field": CustomField, "segment": Segment, "entry": BlocklistEntry,
        "import": ImportJob, "bulk": BulkJob, "export": ExportJob, "form": SignupForm,
    }  # fmt: skip
    found = set()
    for name, model in models.items():
        for obj in model.objects.visible_to(user):
            found.add("global" if name == "entry" and obj.account_id is None else name)
    return found


def test_the_owner_sees_everything_of_the_account(owner, things) -> None:  # noqa: ANN001
    assert seen_by(owner) == set(things)


def test_a_delegate_sees_the_lists_jobs_but_not_the_accounts_own_objects(
    owner, delegate, things
) -> None:  # noqa: ANN001
    grant(things["list"], delegate, "viewer", granted_by=owner)
    assert seen_by(delegate) == {"list", "import", "bulk", "export", "global"}


def test_a_stranger_sees_only_global_blocklist_entries(stranger, things) -> None:  # noqa: ANN001
    assert seen_by(stranger) == {"global"}


def test_only_the_account_edits_its_blocklist(owner, stranger, things) -> None:  # noqa: ANN001
    assert list(BlocklistEntry.objects.editable_by(owner)) == [things["entry"]]
    assert not BlocklistEntry.objects.editable_by(stranger).exists()


def test_only_the_account_edits_its_signup_forms(owner, delegate, stranger, things) -> None:  # noqa: ANN001
    grant(things["list"], delegate, "manager", granted_by=owner)
    assert list(SignupForm.objects.editable_by(owner)) == [things["form"]]
    assert not SignupForm.objects.editable_by(delegate).exists()
    assert not SignupForm.objects.editable_by(stranger).exists()
