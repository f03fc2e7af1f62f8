"""The test app: models in models.py, migrations made by the test."""
