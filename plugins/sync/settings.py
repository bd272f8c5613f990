"""Sync plugin settings: the limits, by default those Amazon Cognito Sync had (20 datasets per
identity, 1 MB and 1024 records per dataset, dataset names of up to 128 characters, keys of up to
1024; see docs/clients.md)."""
from __future__ import annotations

from marshmallow import fields, validate

from gateway.settings import SettingsSchema


class SyncSettings(SettingsSchema):
    max_datasets = fields.Int(data_key="SYNC_MAX_DATASETS", load_default=20, validate=validate.Range(1, 1000))
    max_dataset_bytes = fields.Int(data_key="SYNC_MAX_DATASET_BYTES", load_default=1024 * 1024,
                                   validate=validate.Range(1024, 16 * 1024 * 1024))
    max_records = fields.Int(data_key="SYNC_MAX_RECORDS", load_default=1024, validate=validate.Range(1, 100_000))
    max_key_length = fields.Int(data_key="SYNC_MAX_KEY_LENGTH", load_default=1024, validate=validate.Range(1, 1024))
    push_attempts = fields.Int(data_key="SYNC_PUSH_ATTEMPTS", load_default=5, validate=validate.Range(1, 20))
