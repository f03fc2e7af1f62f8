"""Django settings for the test project; the database is the SQLAlchemy-style URL in SNAP_DJANGO_URL."""

import os

import sqlalchemy as sa

_url = sa.make_url(os.environ["SNAP_DJANGO_URL"])
if _url.drivername.startswith("sqlite"):
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": _url.database}
elif _url.drivername.startswith("postgresql"):
    _db = {"ENGINE": "django.db.backends.postgresql", "NAME": _url.database}
else:
    import pymysql

    pymysql.install_as_MySQLdb()  # Django's MySQL backend on PyMySQL, snapgit's driver
    _db = {"ENGINE": "django.db.backends.mysql", "NAME": _url.database, "OPTIONS": {"charset": "utf8mb4"}}
if not _url.drivername.startswith("sqlite"):
    _db.update(USER=_url.username or "", PASSWORD=_url.password or "", HOST=_url.host or "", PORT=_url.port or "")

DATABASES = {"default": _db}
SECRET_KEY = "test-only"
USE_TZ = True
TIME_ZONE = "Europe/Paris"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "shop",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]  # no middleware: never served
