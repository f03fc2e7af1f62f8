"""The ORM steps of tests/test_django_app.py: python drive.py fill|change|dump|lookups|add.

Run in the project folder with SNAP_DJANGO_URL set; every command prints one JSON document."""

import datetime as dt
import json
import os
import sys
import uuid
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
import django

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.admin.models import ADDITION, LogEntry  # noqa: E402
from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from shop.models import Category, Product, Spec, Tag  # noqa: E402

UTC = dt.UTC
BIG_JSON = {"items": [{"i": i, "name": f"item {i} \u00e9\u2603", "ok": i % 2 == 0} for i in range(3000)], "n": None}


def fill() -> None:
    root = Category.objects.create(name="Food")
    sweets = Category.objects.create(name="Sweets", parent=root)
    tools = Category.objects.create(name="Outils \u00e0 main", parent=None)
    tags = [Tag.objects.create(label=s) for s in ("new", "sale", "bio")]
    rows = [
        dict(
            name="Cr\u00e8me br\u00fbl\u00e9e \U0001f36e",
            email="C10@EXAMPLE.COM",
            description="",
            price=Decimal("99999999.9999"),
            weight=0.1,
            stock=2147483647,
            rank=-32768,
            views=9223372036854775807,
            launched=dt.date(2007, 1, 1),
            opens=dt.time(10, 0),
            created=dt.datetime(2007, 1, 1, 0, 0, 0, tzinfo=UTC),
            shelf_life=dt.timedelta(days=-1, seconds=5),
            attrs={"a": 1, "b": [1, 2.5, "x"], "nested": {"\u00fc": None}},
            blob=bytes(range(256)),
            active=True,
            ip="192.168.0.1",
            url="https://example.com/a?b=c",
            category=sweets,
        ),
        dict(
            name="\u65e5\u672c\u8a9e",
            email="c10@example.com",
            description=None,
            price=Decimal("-99999999.9999"),
            weight=None,
            stock=0,
            rank=32767,
            views=-9223372036854775808,
            launched=None,
            opens=dt.time(23, 59, 59, 999999),
            created=dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            shelf_life=dt.timedelta(microseconds=-1),
            attrs=BIG_JSON,
            blob=b"",
            active=False,
            ip="2001:db8::1",
            url="",
            category=root,
        ),
        dict(
            name="Hammer",
            email="",
            description="a line\nand another \u2014 with 'quotes' and \"double\" and \\",
            price=Decimal("0.0001"),
            weight=1e-300,
            launched=dt.date(1999, 12, 31),
            opens=dt.time(0, 0),
            created=dt.datetime(1999, 12, 31, 23, 0, 0, 500000, tzinfo=UTC),
            shelf_life=dt.timedelta(days=3650, microseconds=1),
            attrs=[],
            blob=None,
            ip=None,
            category=tools,
        ),
        dict(
            name="Hammer",
            email="x@y.z",
            description="same name, other category",
            price=Decimal("12.5"),
            created=dt.datetime(2020, 6, 1, 12, 30, tzinfo=UTC),
            attrs="a JSON string",
            category=root,
        ),
    ]
    products = [Product.objects.create(**r) for r in rows]
    products[0].tags.set(tags[:2])
    products[1].tags.set(tags)
    products[2].tags.set(tags[2:])
    Spec.objects.create(product=products[0], body="spec \u00e9", checked=dt.datetime(2021, 1, 1, tzinfo=UTC))
    Spec.objects.create(product=products[2], body="", checked=None)
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    editors = Group.objects.create(name="editors")
    editors.permissions.set(Permission.objects.filter(codename__endswith="_product"))
    User.objects.create_user("Bob", "bob@example.com", "pw").groups.add(editors)
    LogEntry.objects.create(
        user=admin,
        content_type=ContentType.objects.get_for_model(Product),
        object_id=str(products[0].pk),
        object_repr=str(products[0].name),
        action_flag=ADDITION,
        change_message=json.dumps([{"added": {}}]),
    )
    s = SessionStore()
    s["cart"] = [str(p.sku) for p in products]
    s.create()
    print(json.dumps({"products": [p.pk for p in products]}))


def change() -> None:
    """Changes of every kind: updates, an insert, and a delete that cascades."""
    p = Product.objects.order_by("pk")
    first, second, third = p[0], p[1], p[2]
    first.price = Decimal("1.2300")
    first.description = None
    first.save(update_fields=["price", "description"])
    second.attrs = {**second.attrs, "n": 1}
    second.save(update_fields=["attrs"])
    Tag.objects.filter(label="sale").update(label="soldes")
    deleted = third.pk
    third.delete()  # cascades to its spec and its tags
    new = Product.objects.create(
        name="Nouveau",
        sku=uuid.UUID("00000000-0000-0000-0000-000000000001"),
        price=Decimal("5"),
        created=dt.datetime(2025, 1, 1, 8, 0, 0, 1, tzinfo=UTC),
        category=Category.objects.get(name="Food"),
    )
    new.tags.add(Tag.objects.get(label="new"))
    print(json.dumps({"updated": [first.pk, second.pk], "deleted": deleted, "added": new.pk}))


def _plain(v: object) -> str:
    if isinstance(v, memoryview):
        v = bytes(v)
    return repr(v)


def dump() -> None:
    """Every object of every model as the ORM reads it (repr keeps types and microseconds)."""
    out = {}
    for model in apps.get_models(include_auto_created=True):
        rows = []
        for obj in model.objects.order_by("pk"):
            rows.append({f.attname: _plain(getattr(obj, f.attname)) for f in model._meta.concrete_fields})
        out[model._meta.db_table] = rows
    print(json.dumps(out, sort_keys=True))


def lookups() -> None:
    """How many rows the ORM's lookups find by each product's own values: an exact restore finds
    what the original database finds."""
    found = {}
    for p in Product.objects.order_by("pk"):
        q = Product.objects
        found[str(p.pk)] = {
            "created": q.filter(created=p.created).count(),
            "created_range": q.filter(created__gte=p.created, created__lte=p.created).count(),
            "opens": q.filter(opens=p.opens).count(),
            "launched": q.filter(launched=p.launched).count(),
            "email": q.filter(email=p.email).count(),
            "email_iexact": q.filter(email__iexact=p.email).count(),
            "name": q.filter(name=p.name).count(),
            "sku": q.filter(sku=p.sku).count(),
            "price": q.filter(price=p.price).count(),
            "shelf_life": q.filter(shelf_life=p.shelf_life).count(),
            "ip": q.filter(ip=p.ip).count(),
            "attrs": q.filter(attrs=p.attrs).count(),
            "attrs_key": q.filter(attrs__has_key="a").count(),
            "blob": q.filter(blob=p.blob).count() if p.blob is not None else -1,
            "description_isnull": q.filter(description__isnull=True).count(),
            "description_empty": q.filter(description="").count(),
            "tags": sorted(p.tags.values_list("label", flat=True)),
            "category_children": Category.objects.filter(parent=p.category).count(),
        }
    s = SessionStore(session_key=SessionStore.get_model_class().objects.get().session_key)
    found["session"] = {"cart": len(s.get("cart", [])), "admin_logs": LogEntry.objects.count()}
    print(json.dumps(found, sort_keys=True))


def add() -> None:
    """A new product and tag through the ORM: the database numbers them after the restored rows."""
    t = Tag.objects.create(label="after-restore")
    p = Product.objects.create(
        name="after", price=Decimal("1"), created=dt.datetime.now(UTC), category=Category.objects.first()
    )
    p.tags.add(t)
    print(json.dumps({"product": p.pk, "tag": t.pk}))


{"fill": fill, "change": change, "dump": dump, "lookups": lookups, "add": add}[sys.argv[1]]()
