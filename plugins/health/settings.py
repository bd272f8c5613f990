"""Health plugin settings."""
from marshmallow import fields, validate

from gateway.settings import SettingsSchema


class HealthSettings(SettingsSchema):
    # Probes from every ALB node arrive every few seconds; one run of the checks answers them all.
    ready_cache_seconds = fields.Float(
        data_key="HEALTH_READY_CACHE_SECONDS", load_default=1.0, validate=validate.Range(0, 30)
    )
