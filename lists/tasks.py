"""Celery entry points of the lists app: ids in, one call into the domain, nothing else."""

from __future__ import annotations

from smtplib import SMTPConnectError, SMTPServerDisconnected

from celery import shared_task

from lists import imports, planner


# A large import may run for a long time; it commits every chunk, so the task
# limits only guard against a worker that hangs. An interrupted job is resumed by
# lists.job_recovery (a few times) or from the panel (its "Resume" button), not by a
# redelivered message.
@shared_task(soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def run_import(job_id: int) -> None:
    imports.run(job_id)


# --- Signup forms (lists.signup, lists.confirmation) --------------------------------------
# Named transient errors only: a refused recipient (SMTPRecipientsRefused) is not retried.
_MAIL_ERRORS = (SMTPServerDisconnected, SMTPConnectError, TimeoutError, ConnectionError)


@shared_task(autoretry_for=_MAIL_ERRORS, retry_backoff=30, max_retries=8)
def send_confirmation(subscription_ids: list[int], form_id: int | None) -> bool:
    """Mails the double opt-in link of one signup."""
    from lists import confirmation

    return confirmation.send_confirmation(subscription_ids, form_id)


@shared_task(autoretry_for=_MAIL_ERRORS, retry_backoff=30, max_retries=8)
def send_welcome(subscription_id: int) -> bool:
    from lists import confirmation

    return confirmation.send_welcome(subscription_id)


@shared_task
def expire_pending_subscriptions() -> int:
    """Beat: removes subscriptions never confirmed within PENDING_EXPIRY_DAYS."""
    from lists import subscriptions

    return subscriptions.expire_pending()


# A chunk's worth of ids: a retry skips those already mailed (lists.imports claims each).
@shared_task(autoretry_for=_MAIL_ERRORS, retry_backoff=30, max_retries=8)
def send_import_confirmations(subscription_ids: list[int]) -> int:
    """Mails the confirmation of each pending subscription an import created."""
    return imports.send_confirmations(subscription_ids)


# --- Bulk actions (lists.bulk) ------------------------------------------------------------
@shared_task
def run_bulk_job(job_id: int) -> None:
    """Runs a bulk action job: ids in, lists.bulk.run_job does the work."""
    from lists import bulk

    bulk.run_job(job_id)


# --- Export jobs (lists.exports) ----------------------------------------------------------
# Like an import: long, and not resumed by a redelivered message (a new export is).
@shared_task(soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def run_export(job_id: int) -> None:
    from lists import exports

    exports.run_job(job_id)


@shared_task
def recover_jobs() -> None:
    """Beat: resumes imports whose worker died, sends lost import/export/bulk messages again."""
    from lists import job_recovery

    job_recovery.recover()


@shared_task
def clean_search_indexes() -> int:
    return planner.clean_search_indexes()
