"""The answers tests/field_types.rs expects, asked of Django 5.2 on PostgreSQL.

wyrmhole's filters follow Django on PostgreSQL; this runs the same rows and
filters through Django itself, so the expectations are Django's and not a
reading of its documentation. Usage, with a throwaway server (see
tests/support/postgres.sh) and `pip install "django==5.2.*" "psycopg[binary]"`:

    DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres python3 tests/support/django_reference.py

It creates (and drops first) a database `wyrm_django_reference` on that server.
"""
import os
import urllib.parse

import psycopg

url = urllib.parse.urlparse(os.environ["DATABASE_URL"])
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
    admin.execute("DROP DATABASE IF EXISTS wyrm_django_reference")
    admin.execute("CREATE DATABASE wyrm_django_reference")

import django, json, uuid, datetime
from django.conf import settings
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "wyrm_django_reference",
                           "USER": url.username or "", "PASSWORD": url.password or "",
                           "HOST": url.hostname or "", "PORT": str(url.port or 5432)}},
    INSTALLED_APPS=[], USE_TZ=True, TIME_ZONE="UTC")
django.setup()
from django.db import models, connection
class Note(models.Model):
    title = models.TextField()
    due = models.DateField(null=True)
    remind_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    key = models.UUIDField()
    settings = models.JSONField(null=True)
    price = models.BigIntegerField()
    priority = models.SmallIntegerField(null=True)
    class Meta:
        app_label = "x"
with connection.schema_editor() as e:
    e.create_model(Note)
U = datetime.timezone.utc
def note(title, due, created, theme, price, priority):
    d = datetime.date.fromisoformat(due) if due else None
    Note.objects.create(title=title, due=d, remind_at=datetime.datetime.combine(d, datetime.time(9,30), U) if d else None,
        created_at=created, key=uuid.UUID(int=len(title)*0x1111), settings={"theme": theme, "font": {"size": 12}} if theme else None, price=price, priority=priority)
note("a", "2024-02-29", datetime.datetime(2024,2,29,12,5,0,500000,U), "dark", 1250, 1)
note("bb", "2023-12-31", datetime.datetime(2023,12,31,23,59,59,0,U), "light", 999, None)
note("ccc", None, datetime.datetime(2024,3,3,0,0,0,0,U), None, 10000, 5)
note("dddd", "2024-10-05", datetime.datetime(2024,10,5,18,0,0,0,U), "dark", 5, -3)
cases = [
 ({"due": "2024-2-29"}, [1]),
 ({"due__gt": "2024-1-5"}, [1, 4]),
 ({"due__year": 2024}, [1, 4]),
 ({"due__year__gte": 2024, "due__month__lt": 10}, [1]),
 ({"due__week_day": 5}, [1]),
 ({"due__quarter__in": [4, None]}, [2, 4]),
 ({"created_at__date": "2024-02-29"}, [1]),
 ({"created_at__hour__gte": 18}, [2, 4]),
 ({"created_at__lt": "2024-01-01T01:00:00+01:00"}, [2]),
 ({"key": "00000000000000000000000000002222"}, [2]),
 ({"key__gt": "00000000-0000-0000-0000-000000002222"}, [3, 4]),
 ({"key__endswith": "0000-000000003333"}, [3]),
 ({"key__icontains": "0-00000000444"}, [4]),
 ({"key__contains": "0000-0000-0000-0000"}, [1, 2, 3, 4]),
 ({"key__contains": "00000000000000000000"}, []),
 ({"settings__theme": "dark"}, [1, 4]),
 ({"settings__theme__in": ["dark", None, 1]}, [1, 4]),
 ({"settings__in": ["dark", 1]}, []),
 ({"settings__font__size": 12.0}, [1, 2, 4]),
 ({"settings__has_key": "font"}, [1, 2, 4]),
 ({"settings__theme__isnull": True}, [3]),
 ({"settings__font__isnull": False}, [1, 2, 4]),
 ({"settings__isnull": True}, [3]),
 ({"settings__theme": None}, []),
 ({"pk__lt": 99999999999999999999}, [1, 2, 3, 4]),
 ({"priority__lt": 99999999999999999999}, [1, 2, 3, 4]),
 ({"priority": 99999999999999999999}, []),
 ({"priority__gt": -40000}, [1, 2, 3, 4]),
 ({"priority__gte": 40000}, []),
 ({"priority__range": [0, 40000]}, [1, 3]),
 ({"priority__in": [40000, 5, None]}, [3]),
 ({"priority": 5.0}, [3]),
 ({"pk__in": [1, 3]}, [1, 3]),
]
bad = 0
for f, want in cases:
    try:
        got = sorted(Note.objects.filter(**f).values_list("id", flat=True))
    except Exception as e:
        got = "error: %s" % e
    if got != want:
        bad += 1
        print("DIFF", f, "django:", got, "ours:", want)
print("checked", len(cases), "filters; differences from tests/field_types.rs:", bad)
raise SystemExit(1 if bad else 0)
