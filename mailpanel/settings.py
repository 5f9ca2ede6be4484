"""Settings for mailpanel, read from the environment (twelve-factor).

With no environment at all mailpanel runs on its embedded default: SQLite, a
filesystem Celery broker and a file cache under ``var/``, and outgoing mail
delivered to the local outbox (``manage.py run_outbox``). Production sets
``DATABASE_URL`` (and usually ``REDIS_URL``); then ``DEBUG`` is off by default
and ``SECRET_KEY`` is required. Any variable may instead be given as
``<NAME>_FILE`` naming a file that holds the value (container secrets).
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# The embedded default is "no database configured": everything else follows from it.
EMBEDDED = not env.str("DATABASE_URL", default="")
DEBUG = env.bool("DEBUG", default=EMBEDDED)

VAR_DIR = Path(env.str("MAILPANEL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

if DEBUG:
    SECRET_KEY = env.str(
        "SECRET_KEY", default="mailpanel-insecure-development-key-not-for-production"
    )
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set SECRET_KEY or SECRET_KEY_FILE."
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000" if DEBUG else "").rstrip("/")

# Encrypts relay passwords and DKIM keys in the database (see mailpanel/lib/encryption.py).
MAILPANEL_ENCRYPTION_KEY = env.str("MAILPANEL_ENCRYPTION_KEY", default="")

# Whether people may create their own accounts. Off: operators create users in the admin.
SIGNUP_ENABLED = env.bool("SIGNUP_ENABLED", default=False)

# Public signup forms (lists.signup). X-Forwarded-For is believed only from these
# proxies (addresses or networks, e.g. "10.0.0.0/8"); otherwise REMOTE_ADDR counts.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
PENDING_EXPIRY_DAYS = env.int("PENDING_EXPIRY_DAYS", default=7)
SIGNUP_CONFIRM_COOLDOWN_MINUTES = env.int("SIGNUP_CONFIRM_COOLDOWN_MINUTES", default=60)
SIGNUP_MIN_FILL_SECONDS = env.float("SIGNUP_MIN_FILL_SECONDS", default=2.0)
# A form's fill-time stamp is refused once older than this (so a copied stamp dies).
SIGNUP_STAMP_MAX_AGE_HOURS = env.float("SIGNUP_STAMP_MAX_AGE_HOURS", default=24.0)
# The plain HTML embed carries no stamp: its posts get this stricter limit per IP instead.
SIGNUP_RATE_PER_IP_UNSTAMPED = env.str("SIGNUP_RATE_PER_IP_UNSTAMPED", default="3/3600")
# Rate limits: "<count>/<seconds>".
SIGNUP_RATE_PER_IP = env.str("SIGNUP_RATE_PER_IP", default="20/600")
SIGNUP_RATE_PER_FORM = env.str("SIGNUP_RATE_PER_FORM", default="600/60")
SIGNUP_RATE_PER_ADDRESS = env.str("SIGNUP_RATE_PER_ADDRESS", default="3/3600")
# The MX-or-A check of the address's domain; off only for benchmarks and offline setups.
SIGNUP_DNS_CHECK = env.bool("SIGNUP_DNS_CHECK", default=True)
SIGNUP_DNS_TIMEOUT = env.float("SIGNUP_DNS_TIMEOUT", default=2.0)

INSTALLED_APPS = [
    "mailpanel",
    "lists",
    "campaigns",
    "sending",
    "bounces",
    "stats",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_ckeditor_5",
    "anymail",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mailpanel.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mailpanel.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailpanel.urls"
WSGI_APPLICATION = "mailpanel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mailpanel.navigation.navigation",
            ],
        },
    },
]

# Database: SQLite under var/ by default, Postgres (psycopg 3) in production.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mailpanel.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not memory: the test suite's Celery worker process must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "mailpanel.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Redis serves the cache and (unless CELERY_BROKER_URL says otherwise) the broker.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    # A file cache, not memory: counters (rate limits) must be shared by web and worker processes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Outgoing mail. The embedded default hands everything to the local outbox.
OUTBOX_DIR = Path(env.str("OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
OUTBOX_SMTP_HOST = env.str("OUTBOX_SMTP_HOST", default="127.0.0.1")
OUTBOX_SMTP_PORT = env.int("OUTBOX_SMTP_PORT", default=1025)
OUTBOX_KEEP_DAYS = env.int("OUTBOX_KEEP_DAYS", default=14)
# mailpanel's own mail goes through the relays operators configure (sending.backend);
# with no relay, to EMAIL_URL's server, or else to the local outbox.
EMAIL_HOST = OUTBOX_SMTP_HOST
EMAIL_PORT = OUTBOX_SMTP_PORT
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
EMAIL_FALLBACK_BACKEND = vars().get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_BACKEND = "sending.backend.RelayBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mailpanel@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# Celery. Queues: "send" for the send pipeline (workers there run with prefetch 1),
# "bounces" and "stats" for their apps, "default" for everything else.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Longer than any send task may run, so Redis does not redeliver a task still in progress.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("default", "send", "bounces", "stats")
]
CELERY_TASK_ROUTES = {
    # The dispatcher must not wait behind send batches.
    "sending.tasks.dispatch_tick": {"queue": "default"},
    "sending.tasks.*": {"queue": "send"},
    "bounces.tasks.*": {"queue": "bounces"},
    # The failure reports' watchdog must not wait behind the report parts it watches.
    "stats.tasks.enforce_report_deadlines": {"queue": "default"},
    "stats.tasks.*": {"queue": "stats"},
}
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=15 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=20 * 60)
# One message at a time per child: a fast worker takes more batches, a slow one fewer.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = False
# Worker nodes beat this often; three missed beats and a node shows as lost.
NODE_HEARTBEAT_SECONDS = env.int("NODE_HEARTBEAT_SECONDS", default=10)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "dispatch-campaigns": {"task": "sending.tasks.dispatch_tick", "schedule": 2.0},
    "prune-outbox": {"task": "mailpanel.tasks.prune_outbox", "schedule": 3600.0},
    "expire-pending-signups": {
        "task": "lists.tasks.expire_pending_subscriptions",
        "schedule": 3600.0,
    },
    "poll-bounce-mailboxes": {"task": "bounces.tasks.poll_mailboxes", "schedule": 60.0},
    "prune-provider-receipts": {
        "task": "bounces.tasks.prune_provider_receipts",
        "schedule": 86400.0,
    },
    # Imports whose worker died resume; jobs whose task message was lost are sent again.
    "recover-list-jobs": {"task": "lists.tasks.recover_jobs", "schedule": 60.0},
    # Tracking: buffered opens and clicks into the log; partitions ahead; list rollups.
    "drain-tracking-buffer": {"task": "stats.tasks.drain_tracking_buffer", "schedule": 2.0},
    "ensure-event-partitions": {"task": "stats.tasks.ensure_partitions", "schedule": 86400.0},
    "roll-up-lists": {"task": "stats.tasks.roll_up_lists", "schedule": 3600.0},
    "end-stalled-reports": {"task": "stats.tasks.enforce_report_deadlines", "schedule": 60.0},
}

# Tracking (stats/). Addresses of opens and clicks are kept as "truncate" (/24, /48),
# "hash" (HMAC with SECRET_KEY) or "none". A click this soon after sending is a scanner.
STATS_IP_MODE = env.str("STATS_IP_MODE", default="truncate")
if STATS_IP_MODE not in ("truncate", "hash", "none"):
    raise ImproperlyConfigured("STATS_IP_MODE must be truncate, hash or none.")
STATS_SCANNER_SECONDS = env.float("STATS_SCANNER_SECONDS", default=10.0)
STATS_DRAIN_CHUNK_SIZE = env.int("STATS_DRAIN_CHUNK_SIZE", default=1000)
# Extra machine networks for stats.machines, as "<name>=<cidr>" (e.g. "apple=17.0.0.0/8").
STATS_MACHINE_NETWORKS = env.list("STATS_MACHINE_NETWORKS", default=[])

# Campaigns: attachment limits (bytes), the editor's image uploads, and CKEditor 5.
CAMPAIGN_ATTACHMENT_MAX_FILE_BYTES = env.int(
    "CAMPAIGN_ATTACHMENT_MAX_FILE_BYTES", default=10 * 1024 * 1024
)
CAMPAIGN_ATTACHMENT_MAX_TOTAL_BYTES = env.int(
    "CAMPAIGN_ATTACHMENT_MAX_TOTAL_BYTES", default=10 * 1024 * 1024
)
CAMPAIGN_MEDIA_MAX_BYTES = env.int("CAMPAIGN_MEDIA_MAX_BYTES", default=5 * 1024 * 1024)
# Uploads go to the account's own media library (campaigns.views.media), not the package's view.
CK_EDITOR_5_UPLOAD_FILE_VIEW_NAME = "campaigns:media-upload"
CKEDITOR_5_UPLOAD_FILE_TYPES = ["jpeg", "png", "gif", "webp"]
CKEDITOR_5_CONFIGS = {
    "default": {"toolbar": ["heading", "|", "bold", "italic", "link"]},
    "campaign": {
        "toolbar": [
            "heading", "|", "bold", "italic", "underline", "link", "|", "bulletedList",
            "numberedList", "blockQuote", "|", "imageUpload", "insertTable", "horizontalLine",
            "|", "undo", "redo",
        ],
        "image": {"toolbar": ["imageTextAlternative", "|", "imageStyle:alignLeft",
                              "imageStyle:alignCenter", "imageStyle:alignRight"]},
        "table": {"contentToolbar": ["tableColumn", "tableRow", "mergeTableCells"]},
        "heading": {
            "options": [
                {"model": "paragraph", "title": "Paragraph", "class": "ck-heading_paragraph"},
                {"model": "heading1", "view": "h1", "title": "Heading 1",
                 "class": "ck-heading_heading1"},
                {"model": "heading2", "view": "h2", "title": "Heading 2",
                 "class": "ck-heading_heading2"},
                {"model": "heading3", "view": "h3", "title": "Heading 3",
                 "class": "ck-heading_heading3"},
            ]
        },
    },
}  # fmt: skip

# The send pipeline (sending/). A batch is a range of recipients one worker sends; a
# chunk is the group of messages marked "handed to SMTP" in one write. Between chunks a
# worker re-reads pause/cancel and suppressions: 250 messages take a fraction of a
# second, well inside the 5 seconds a pause may take, and keep those reads rare.
SEND_BATCH_SIZE = env.int("SEND_BATCH_SIZE", default=1000)
SEND_CHUNK_SIZE = env.int("SEND_CHUNK_SIZE", default=250)
SEND_BATCH_LEASE_SECONDS = env.int("SEND_BATCH_LEASE_SECONDS", default=120)
SEND_GRACE_HOURS = env.float("SEND_GRACE_HOURS", default=12)
SEND_RETRY_DEADLINE_HOURS = env.float("SEND_RETRY_DEADLINE_HOURS", default=24)
# The domain of VERP return paths (bounces+...@BOUNCE_DOMAIN); default: the sender's.
BOUNCE_DOMAIN = env.str("BOUNCE_DOMAIN", default="")
# Campaigns may only send from addresses on verified sending domains (DKIM published):
# on in production, off on the embedded default where nothing leaves the machine.
REQUIRE_VERIFIED_SENDER_DOMAIN = env.bool("REQUIRE_VERIFIED_SENDER_DOMAIN", default=not DEBUG)
# Bounce mailboxes (bounces/mailboxes.py) behind a private CA: the CA's PEM file.
BOUNCE_MAILBOX_CA_FILE = env.str("BOUNCE_MAILBOX_CA_FILE", default="")
# Alert the operators when one relay and receiving domain refuse this many messages in a day
# because of the sender (bounces/suppression.py). Shared by all accounts, so not theirs to set.
BOUNCE_SENDER_SIDE_ALERT_THRESHOLD = env.int("BOUNCE_SENDER_SIDE_ALERT_THRESHOLD", default=20)

# ESP tracking webhooks (bounces/webhooks.py), served at /webhooks/<esp>/tracking/.
# Mailgun signs its posts (MAILGUN_WEBHOOK_SIGNING_KEY); SendGrid, Postmark and Amazon SES
# (through SNS) authenticate with HTTP basic auth: WEBHOOK_SECRET is "user:password", or a
# comma-separated list of them while rotating. A webhook whose secret is unset answers 404.
ANYMAIL = {
    "MAILGUN_WEBHOOK_SIGNING_KEY": env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default=""),
    "WEBHOOK_SECRET": env.list("WEBHOOK_SECRET", default=[]),
}
# The SNS topics Amazon SES publishes our events to; notifications from others are refused,
# and only these are confirmed automatically when subscribed.
AMAZON_SES_SNS_TOPIC_ARNS = env.list("AMAZON_SES_SNS_TOPIC_ARNS", default=[])
# Check each SNS message's signature against the certificate SNS serves (fetched over HTTPS).
AMAZON_SES_VERIFY_SNS_SIGNATURES = env.bool("AMAZON_SES_VERIFY_SNS_SIGNATURES", default=True)
# Days a delivery report's receipt is kept to recognise the ESP posting it again
# (bounces/receipts.py): far longer than any ESP retries a webhook.
PROVIDER_RECEIPT_KEEP_DAYS = env.int("PROVIDER_RECEIPT_KEEP_DAYS", default=30)

# Security. Production is HTTPS; the proxy in front says so with X-Forwarded-Proto.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
