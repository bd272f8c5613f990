"""`python -m gateway app-user --secret ARN`: creates or aligns the app's least-privilege MySQL user.

Run by a deploy's migration instance after `migrate` (gateway-migrate.service), connected as the
master user (DATABASE_URL). The secret (`{"username", "password"}`, the one serving instances read
as DATABASE_SECRET_ARN) names the user and its password. The user may connect from any host, over
TLS only, and gets SELECT, INSERT, UPDATE and DELETE on the database of DATABASE_URL: all the app
does at run time (GET_LOCK needs no privilege; production never migrates as the app user). An
existing user's password is set again on every run, which aligns it after the secret changed: the
server keeps only a salted hash, so there is nothing to compare it with, and setting an unchanged
password changes nothing for open or new connections. Privileges granted by hand beyond these are
left alone (revoking first would fail the app's queries in between).

The values go as parameters. MySQL takes no `?` marker in CREATE USER or ALTER USER (markers are for
DML only), and aiomysql does not prepare on the server: it puts each parameter into the statement as
a literal quoted by the connection's own escape function, which honours NO_BACKSLASH_ESCAPES. The
database name, an identifier, is checked against a strict pattern and back-quoted. Nothing printed
carries the password: a MySQL error is reported by its code only (its message may quote the
statement).
"""
from __future__ import annotations

import json
import re

from aiohttp import web

from plugins.data.api import Database, DatabaseUnavailable
from plugins.data.secrets import SecretsManager
from plugins.data.settings import mysql_params

PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SCHEMA = re.compile(r"[A-Za-z0-9_]{1,64}")
LOCK = "gateway.app-user"


class AppUserError(Exception):
    pass


async def align(database: Database, schema: str, user: str, password: str) -> bool:
    """The user exists with this password, TLS required and the app's privileges on `schema`;
    whether it was created now. One runner at a time (a named lock, like migrations)."""
    if not SCHEMA.fullmatch(schema):
        raise AppUserError(f"database name {schema!r} is not a plain identifier")
    async with database.locked(LOCK) as session:
        existed = await session.fetch_one("SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = '%'", (user,))
        if existed["n"]:
            await session.execute("ALTER USER ?@'%' IDENTIFIED BY ? REQUIRE SSL", (user, password))
        else:
            await session.execute("CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ? REQUIRE SSL", (user, password))
        await session.execute(f"GRANT {PRIVILEGES} ON `{schema}`.* TO ?@'%'", (user,))
    return not existed["n"]


def command(database: Database, settings):
    async def run(app: web.Application, args) -> int:
        import pymysql  # the MySQL engine's own imports, not every app's
        from botocore.exceptions import BotoCoreError, ClientError

        from plugins.data.mysql import error_code

        try:
            if database.dialect != "mysql":
                raise AppUserError("DATABASE_URL must be a mysql:// URL (the master user's)")
            master = mysql_params(settings.database_url)
            store = SecretsManager(args.secret, settings.aws_region, settings.aws_endpoint_url)
            try:
                secret = json.loads(await store.fetch())
            except ValueError:
                secret = None
            finally:
                await store.close()
            if not isinstance(secret, dict) or not secret.get("username") or not secret.get("password"):
                raise AppUserError("the secret is not JSON with username and password")
            user = secret["username"]
            if user == master["user"]:
                raise AppUserError(f"the secret names {user}, the user DATABASE_URL connects as")
            await database.start()
            try:
                created = await align(database, master["db"], user, secret["password"])
            finally:
                await database.close()
        except (AppUserError, DatabaseUnavailable) as exc:
            print(f"app-user: {exc}")
            return 1
        except (BotoCoreError, ClientError) as exc:
            print(f"app-user: the secret could not be read: {exc}")
            return 1
        except pymysql.err.MySQLError as exc:
            print(f"app-user: MySQL refused a statement (error {error_code(exc)})")
            return 1
        print(f"app-user: {user}@% {'created' if created else 'aligned'}: {PRIVILEGES} on {master['db']}, TLS only")
        return 0

    return run


def arguments(parser) -> None:
    parser.add_argument("--secret", required=True, metavar="ARN",
                        help="the app user's secret in Secrets Manager (JSON username and password)")
