"""Rate limit settings: one budget per route class and window, per caller."""
from marshmallow import fields, validate

from gateway.settings import SettingsSchema


class RateLimitSettings(SettingsSchema):
    enabled = fields.Bool(data_key="RATELIMIT_ENABLED", load_default=None)  # unset: on in production only
    window_seconds = fields.Int(data_key="RATELIMIT_WINDOW_SECONDS", load_default=60,
                                validate=validate.Range(1, 3600))
    reads = fields.Int(data_key="RATELIMIT_READS", load_default=600, validate=validate.Range(1, 10**9))
    writes = fields.Int(data_key="RATELIMIT_WRITES", load_default=120, validate=validate.Range(1, 10**9))
    media = fields.Int(data_key="RATELIMIT_MEDIA", load_default=30, validate=validate.Range(1, 10**9))
    # A refusal is answered after this long: a flooding caller's connections then cost a sleeping
    # coroutine each instead of the CPU the other callers need (0: answer at once).
    refusal_delay = fields.Float(data_key="RATELIMIT_REFUSAL_DELAY_SECONDS", load_default=1.0,
                                 validate=validate.Range(0, 10))
    # Counts worth sending go at once; those the cache did not take are retried this often.
    flush_seconds = fields.Float(data_key="RATELIMIT_FLUSH_SECONDS", load_default=0.2,
                                 validate=validate.Range(0.01, 5))
