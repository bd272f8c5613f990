"""The built-in plugins. Each folder has the same shape: `__init__.py` declares the `Plugin`,
`settings.py` its settings schema, `routes.py` its handlers, and where it has them `backends.py`
and `migrations/`."""
