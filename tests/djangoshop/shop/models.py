"""Models covering the field types Django offers, and every kind of relation."""

import uuid

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")


class Tag(models.Model):
    label = models.SlugField(max_length=50, unique=True)


class Product(models.Model):
    id = models.BigAutoField(primary_key=True)
    sku = models.UUIDField(default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    description = models.TextField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=4)
    weight = models.FloatField(null=True)
    stock = models.PositiveIntegerField(default=0)
    rank = models.SmallIntegerField(default=0)
    views = models.BigIntegerField(default=0)
    launched = models.DateField(null=True)
    opens = models.TimeField(null=True)
    created = models.DateTimeField()
    shelf_life = models.DurationField(null=True)
    attrs = models.JSONField(default=dict)
    blob = models.BinaryField(null=True)
    active = models.BooleanField(default=True)
    ip = models.GenericIPAddressField(null=True)
    url = models.URLField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    tags = models.ManyToManyField(Tag, related_name="products")

    class Meta:
        unique_together = [("name", "category")]


class Spec(models.Model):
    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True)
    body = models.TextField()
    checked = models.DateTimeField(null=True)
