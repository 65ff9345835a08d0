"""The answers tests/field_types.rs and the relation cases of
tests/filter_parity.rs (`relation_cases_with_known_answers`) expect, asked
of Django 5.2 on PostgreSQL.

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

import django, json, uuid, datetime, sys, types
from django.conf import settings
# An installed app for the models below, without a package on disk:
# reverse relations (`children__...`) are only known between installed apps' models.
app = types.ModuleType("wyrm_ref")
app.__file__ = os.path.abspath(__file__)
sys.modules["wyrm_ref"] = app
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "wyrm_django_reference",
                           "USER": url.username or "", "PASSWORD": url.password or "",
                           "HOST": url.hostname or "", "PORT": str(url.port or 5432)}},
    INSTALLED_APPS=["wyrm_ref"], USE_TZ=True, TIME_ZONE="UTC")
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
        app_label = "wyrm_ref"
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

# Relations: the tables of `relation_cases_with_known_answers` (only the
# fields its filters read). A wyrmhole filter object is one filter() call
# (its keys through one has_many share one related row), each entry of a
# top-level `and` another filter() call (a related row of its own), `or`
# and `not` Q objects (`~Q` on a relation is Django's NOT IN subquery).
from functools import reduce
from django.db.models import Q
class Grand(models.Model):
    t = models.TextField(); b = models.IntegerField()
    class Meta: app_label = "wyrm_ref"
class Parent(models.Model):
    t = models.TextField(); b = models.IntegerField()
    grand = models.ForeignKey(Grand, null=True, on_delete=models.CASCADE, related_name="parents")
    class Meta: app_label = "wyrm_ref"
class Item(models.Model):
    t = models.TextField(); b = models.IntegerField()
    parent = models.ForeignKey(Parent, null=True, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(Parent, on_delete=models.CASCADE, related_name="+")
    boss = models.ForeignKey("self", null=True, on_delete=models.CASCADE, related_name="reports")
    class Meta: app_label = "wyrm_ref"
class Child(models.Model):
    t = models.TextField(); b = models.IntegerField()
    item = models.ForeignKey(Item, null=True, on_delete=models.CASCADE, related_name="children")
    class Meta: app_label = "wyrm_ref"
with connection.schema_editor() as e:
    for m in (Grand, Parent, Item, Child):
        e.create_model(m)
g1 = Grand.objects.create(t="Ω", b=1)
p1 = Parent.objects.create(t="éclair", b=1, grand=g1)
p2 = Parent.objects.create(t="ÉCLAIR", b=2, grand=None)
Parent.objects.create(t="x", b=3, grand=g1)
i1 = Item.objects.create(t="", b=10, parent=p1, owner=p2)
Item.objects.create(t="", b=20, parent=None, owner=p1, boss=i1)
i3 = Item.objects.create(t="", b=30, parent=p2, owner=p2, boss=i1)
i4 = Item.objects.create(t="", b=40, parent=None, owner=p2)
i4.boss = i4
i4.save()
Child.objects.create(t="a", b=1, item=i1)
Child.objects.create(t="b", b=2, item=i1)
Child.objects.create(t="a", b=2, item=i3)
Child.objects.create(t="a", b=2, item=None)

def q(obj):
    plain = {k: v for k, v in obj.items() if k not in ("or", "and", "not")}
    parts = [Q(**plain)]
    if "or" in obj:
        parts.append(reduce(lambda a, b: a | b, [q(i) for i in obj["or"]]))
    if "and" in obj:
        parts += [q(i) for i in obj["and"]]
    if "not" in obj:
        parts.append(~q(obj["not"]))
    return reduce(lambda a, b: a & b, parts)

def select(obj):
    qs = Item.objects.filter(q({k: v for k, v in obj.items() if k != "and"}))
    for entry in obj.get("and", []):
        qs = qs.filter(q(entry))
    return sorted(set(qs.values_list("id", flat=True)))

relation_cases = [
 ({"children__t": "a", "children__b": 2}, [3]),
 ({"and": [{"children__t": "a"}, {"children__b": 2}]}, [1, 3]),
 ({"not": {"children__t": "a"}}, [2, 4]),
 ({"not": {"children__t": "a", "children__b": 1}}, [2, 3, 4]),
 ({"parent__t__iexact": "ÉCLAIR"}, [1, 3]),
 ({"parent__t": "éclair"}, [1]),
 ({"not": {"parent__b": 1}}, [2, 3, 4]),
 ({"parent__grand__t": "Ω"}, [1]),
 ({"owner__grand__t": "Ω"}, [2]),
 ({"owner__grand__isnull": True}, [1, 3, 4]),
 ({"parent__grand__isnull": False}, [1]),
 ({"parent__isnull": True}, [2, 4]),
 ({"parent": 2}, [3]),
 ({"parent__id__in": [1, 3]}, [1]),
 ({"owner__pk__gt": 1}, [1, 3, 4]),
 ({"children": 2}, [1]),
 ({"children__in": [3, 99]}, [3]),
 ({"children__in": [4, 99]}, []),
 ({"children__id__gte": 1}, [1, 3]),
 ({"or": [{"parent__b": 2}, {"children__b__gt": 1}]}, [1, 3]),
 ({"parent__b": 1, "owner__b": 2}, [1]),
 ({"boss__b": 10}, [2, 3]),
 ({"boss": 4}, [4]),
 ({"reports__b__gte": 20}, [1, 4]),
 ({"reports__isnull": False}, [1, 4]),
 ({"not": {"reports__id__gt": 0}}, [2, 3]),
 ({"boss__b": 40, "reports__b": 40}, [4]),
 ({"or": [{"boss__isnull": True}, {"boss__b__gt": 20}]}, [1, 4]),
 ({"id__gt": 1, "children__t__in": ["a", "b"]}, [3]),
 ({"not": {"or": [{"parent__isnull": True}, {"children__b": 2}]}}, []),
 # A missing related row counts as NULLs, as Django's LEFT OUTER JOIN does
 # (an item with no children; with no parent, or a parent with no grand).
 ({"children__isnull": True}, [2, 4]),
 ({"parent__grand__b__isnull": True}, [2, 3, 4]),
 ({"not": {"children__isnull": False}}, [2, 4]),
 ({"parent__b__in": [None]}, []),
 ({"not": {"children__in": [], "children__t": "a"}}, [1, 2, 3, 4]),
 ({"and": [{"children__b": 1}, {"children__b__in": [2, 1]}]}, [1]),
]
rbad = known = 0
for f, want, *django_says in relation_cases:
    try:
        got = select(f)
    except Exception as e:
        got = "error: %s" % e
    if django_says and got == django_says[0]:
        known += 1
        print("KNOWN DIFF", json.dumps(f, ensure_ascii=False), "django:", got, "ours:", want)
    elif got != want:
        rbad += 1
        print("DIFF", json.dumps(f, ensure_ascii=False), "django:", got, "ours:", want)
print("checked", len(relation_cases), "relation filters; differences from tests/filter_parity.rs:", rbad,
      "(and", known, "known)")
raise SystemExit(1 if bad or rbad else 0)
