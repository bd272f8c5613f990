"""`python -m gateway COMMAND`: the core's serve, check and openapi, plus every plugin's commands."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Sequence

from aiohttp import web

from gateway import logs
from gateway.app import CORE, OPENAPI, build
from gateway.lifecycle import LIFECYCLE, StartupError, exit_on_startup_failure, failed, serve
from gateway.loader import PluginError
from gateway.plugin import Command
from gateway.readiness import CHECKS, run_checks
from gateway.settings import SettingsError


def run_serve(app: web.Application, args) -> int:
    import uvloop

    core = app[CORE]
    try:
        uvloop.run(serve(app, args.host or core.host, args.port or core.port, core.internal_port))
    except StartupError as exc:
        exit_on_startup_failure(exc, 1)
    return 0


def run_openapi(app: web.Application, args) -> int:
    print(json.dumps(app[OPENAPI], indent=2))
    return 0


async def run_check(app: web.Application, args) -> int:
    """Start the app's resources without changing anything (no migrations), run the readiness
    checks, and report each one that is not ok on a line of its own. `--local` stops after the
    configuration and the plugins' setup (already done when this runs): nothing networked, for a
    boot that must not wait on dependencies."""
    if args.local:
        print("check: configuration ok", file=sys.stderr)
        return 0
    app[LIFECYCLE].inspecting = True
    runner = web.AppRunner(app)
    try:
        await runner.setup()
        status, results = await run_checks(app[CHECKS])
    except Exception as exc:  # a plugin's start-up that failed outright: one line, not its traceback
        status, results = "fail", {"start-up": {"status": "fail", "error": f"{type(exc).__name__}: {exc}"}}
    finally:
        await runner.cleanup()
    for name, result in results.items():
        if result["status"] != "ok":
            print(" ".join(f"{name}: {result.get('error', result['status'])}".split()), file=sys.stderr)
    print(f"check: {status}", file=sys.stderr)
    return 0 if status == "ok" else 1


CORE_COMMANDS = [
    Command("serve", "development server (same app as under gunicorn)", run_serve,
            arguments=lambda p: (p.add_argument("--host"), p.add_argument("--port", type=int))),
    Command("check", "validate configuration and reach every configured backend, changing nothing", run_check,
            arguments=lambda p: p.add_argument("--local", action="store_true",
                                               help="configuration and local files only: nothing networked")),
    Command("openapi", "print the OpenAPI 3.1 document", run_openapi),
]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        built = build()
    except SettingsError as exc:
        print(exc.describe(), file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"plugin error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a plugin's setup that raised: one line, not its traceback
        exit_on_startup_failure(failed(exc), 1)
    logs.configure(built.core.log_level)

    parser = argparse.ArgumentParser(prog="python -m gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {}
    for command in CORE_COMMANDS + built.registry.commands:
        command.arguments(sub.add_parser(command.name, help=command.help))
        commands[command.name] = command
    args = parser.parse_args(argv)
    outcome = commands[args.command].run(built.app, args)
    if asyncio.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    return int(outcome or 0)
