"""Model fields whose values are encrypted at rest (lib/crypto.py).

Both store text: an empty value stays empty in the database (so "is it set" checks such as
``.exclude(slack_webhook_url="")`` keep working), anything else is stored encrypted. Equality
lookups on a non-empty value cannot match (each encryption is different): compare in Python.

A value no key can open reads as empty and logs an error, so one lost key disables that setting
instead of failing every page and task that loads the row.
"""

from __future__ import annotations

import json
import logging

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from . import crypto

logger = logging.getLogger("jobyard.crypto")


def _open(field: models.Field, value: str) -> str | None:
    try:
        return crypto.decrypt(value)
    except crypto.DecryptionError as exc:
        logger.error("%s.%s: %s", field.model.__name__, field.name, exc)
        return None


class EncryptedTextField(models.TextField):
    """A string, encrypted at rest."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        clear = _open(self, value)
        return "" if clear is None else clear

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value or crypto.is_encrypted(value):
            return value
        return crypto.encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON value (a dict of header values, say), encrypted at rest as its JSON text."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return self.get_default()
        clear = _open(self, value)
        if clear is None:
            return self.get_default()
        return json.loads(clear)

    def to_python(self, value):
        if isinstance(value, str):
            if not value:
                return self.get_default()
            return json.loads(crypto.decrypt(value))
        return value

    def get_prep_value(self, value):
        if value is None:
            return None if self.null else ""
        if isinstance(value, str) and (value == "" or crypto.is_encrypted(value)):
            return value
        if value in ({}, []):
            return ""
        return crypto.encrypt(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True))

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj), cls=DjangoJSONEncoder)

    def formfield(self, **kwargs):
        from django import forms

        return super().formfield(**{"form_class": forms.JSONField, **kwargs})
