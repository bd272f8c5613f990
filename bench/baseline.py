"""The baseline every figure is divided by: a bare aiohttp JSON handler, no middleware."""
from aiohttp import web


async def handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", handler)
    return app
