"""The gateway core: an aiohttp application assembled from plugins (see `gateway.plugin`)."""
