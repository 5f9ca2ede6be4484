"""CSV import pages: upload, mapping, progress, report, tenancy, and the real worker."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from lists import imports
from lists.models import ImportJob, ListRole, MailingList, Subscriber
from tests.factories import MailingListFactory


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def mailing_list(owner) -> MailingList:  # noqa: ANN001
    return MailingListFactory(owner=owner)


def csv_file(text: str, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


FILE = "email,name\nann@example.org,Ann\n=cmd|' /C calc'!A0,Evil\n"


def post_upload(client: Client, mailing_list: MailingList, text: str = FILE):  # noqa: ANN201
    url = reverse("lists:import-upload", args=[mailing_list.uuid])
    return client.post(url, {"file": csv_file(text)})


def mapping_post(**overrides: str) -> dict[str, str]:
    return {"column_0": "email", "column_1": "name", "mode": "confirmed", "existing": "update"} | (
        overrides
    )


def test_upload_shows_a_preview_with_guessed_columns_and_the_consent_note(
    owner_client: Client, mailing_list: MailingList, media: Path
) -> None:
    response = post_upload(owner_client, mailing_list)

    job = ImportJob.objects.get()
    assert response.url == reverse("lists:import-mapping", args=[job.uuid])
    page = owner_client.get(response.url).content.decode()
    assert "ann@example.org" in page
    assert "vouch that every person in this file agreed" in page
    assert '<option value="email" selected>' in page


def test_a_file_without_an_email_column_gets_a_clear_error(
    owner_client: Client, mailing_list: MailingList, media: Path
) -> None:
    response = post_upload(owner_client, mailing_list, "name,city\nAnn,Berlin\n")

    assert response.status_code == 200
    assert "no column with e-mail addresses" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_mapping_without_an_email_column_is_refused(
    owner_client: Client, mailing_list: MailingList, media: Path
) -> None:
    job = imports.create_job(mailing_list, mailing_list.owner, csv_file(FILE))
    url = reverse("lists:import-mapping", args=[job.uuid])

    response = owner_client.post(url, mapping_post(column_0=""))

    assert "Choose exactly one column that holds the e-mail addresses" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.UPLOADED


def test_the_rejects_report_neutralises_formula_cells(
    owner_client: Client, mailing_list: MailingList, media: Path
) -> None:
    job = imports.create_job(mailing_list, mailing_list.owner, csv_file(FILE))
    imports.start(job, job.mapping, "confirmed", "update", enqueue=False)
    imports.run(job.id)

    response = owner_client.get(reverse("lists:import-rejects", args=[job.uuid]))

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["line", "reason", "raw"]
    assert rows[1][0] == "3"
    assert rows[1][2] == "'=cmd|' /C calc'!A0,Evil"


def test_the_progress_fragment_polls_while_running_and_stops_when_done(
    owner_client: Client, mailing_list: MailingList, media: Path
) -> None:
    job = imports.create_job(mailing_list, mailing_list.owner, csv_file(FILE))
    imports.start(job, job.mapping, "confirmed", "update", enqueue=False)
    url = reverse("lists:import-progress", args=[job.uuid])

    assert 'hx-trigger="every 2s"' in owner_client.get(url).content.decode()
    imports.run(job.id)
    page = owner_client.get(url).content.decode()

    assert "hx-trigger" not in page
    assert "1 imported" in page
    assert "1 rejected" in page


@pytest.fixture
def job(mailing_list: MailingList, media: Path) -> ImportJob:
    job = imports.create_job(mailing_list, mailing_list.owner, csv_file(FILE))
    imports.start(job, job.mapping, "confirmed", "update", enqueue=False)
    imports.run(job.id)
    return job


JOB_URLS = ["import-detail", "import-progress", "import-rejects", "import-mapping"]


@pytest.mark.parametrize("name", JOB_URLS)
def test_owner_reaches_every_job_page(client: Client, job: ImportJob, name: str) -> None:
    client.force_login(job.mailing_list.owner)
    # The mapping page of a started job sends the owner to its detail page.
    assert client.get(reverse(f"lists:{name}", args=[job.uuid])).status_code in (200, 302)


@pytest.mark.parametrize("name", JOB_URLS)
def test_stranger_gets_404_on_every_job_page(
    client: Client,
    job: ImportJob,
    stranger,
    name: str,  # noqa: ANN001
) -> None:
    client.force_login(stranger)
    assert client.get(reverse(f"lists:{name}", args=[job.uuid])).status_code == 404
    resume = reverse("lists:import-resume", args=[job.uuid])
    assert client.post(resume).status_code == 404


def test_stranger_gets_404_on_upload(client: Client, mailing_list: MailingList, stranger) -> None:  # noqa: ANN001
    client.force_login(stranger)
    url = reverse("lists:import-upload", args=[mailing_list.uuid])
    assert client.get(url).status_code == 404
    assert post_upload(client, mailing_list).status_code == 404


def test_viewer_sees_progress_but_gets_403_on_upload_and_resume(
    client: Client,
    job: ImportJob,
    delegate,  # noqa: ANN001
) -> None:
    ListRole.objects.create(mailing_list=job.mailing_list, user=delegate, role="viewer")
    client.force_login(delegate)

    assert client.get(reverse("lists:import-progress", args=[job.uuid])).status_code == 200
    assert post_upload(client, job.mailing_list).status_code == 403
    assert client.post(reverse("lists:import-resume", args=[job.uuid])).status_code == 403
    assert ImportJob.objects.count() == 1


def test_manager_can_upload(client: Client, mailing_list: MailingList, delegate, media) -> None:  # noqa: ANN001
    ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="manager")
    client.force_login(delegate)

    assert post_upload(client, mailing_list).status_code == 302
    assert ImportJob.objects.get().account == mailing_list.owner


@pytest.mark.django_db(transaction=True)
def test_the_import_runs_in_a_real_worker(celery_worker_process, owner) -> None:  # noqa: ANN001
    # Uploaded through the panel, queued after commit, imported by a worker process.
    mailing_list = MailingListFactory(owner=owner)
    client = Client()
    client.force_login(owner)
    post_upload(client, mailing_list)
    job = ImportJob.objects.get()

    response = client.post(reverse("lists:import-mapping", args=[job.uuid]), mapping_post())

    assert response.status_code == 302
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            break
        time.sleep(0.3)
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.imported, job.rejected) == (1, 1)
    assert Subscriber.objects.get().email == "ann@example.org"
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 1
    job.file.delete(save=False)
