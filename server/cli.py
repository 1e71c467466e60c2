"""The ``noctis`` command: serve, and manage accounts from the shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from server.app import INDEXES, AppOptions, build_app
from server.auth.roles import Role
from server.auth.sessions import Sessions
from server.auth.users import DEFAULT_FACILITY, Users
from server.config import ConfigError, Settings, ensure_secret_key, load_settings
from server.dicom.importer import run_import
from server.eventloop import new_event_loop
from server.http.errors import ApiError
from server.logs import configure_logging
from server.runtime import tune_garbage_collector
from server.store.connect import open_store
from server.store.database import ensure_indexes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noctis", description="Noctis radiology reading server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (flags override NOCTIS_* variables)")
    serve.add_argument("--host", help="NOCTIS_HTTP_HOST")
    serve.add_argument("--port", type=int, help="NOCTIS_HTTP_PORT")
    serve.add_argument("--data-dir", help="NOCTIS_DATA_DIR")
    serve.add_argument("--mongo-url", help="NOCTIS_MONGO_URL")
    serve.add_argument("--redis-url", help="NOCTIS_REDIS_URL")
    serve.add_argument("--dicom-port", type=int, help="NOCTIS_DICOM_PORT")

    dicom_import = commands.add_parser("import", help="ingest every DICOM file under PATH")
    dicom_import.add_argument("path")
    dicom_import.add_argument("--facility", default=DEFAULT_FACILITY)

    user = commands.add_parser("user", help="manage accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--facility", default=DEFAULT_FACILITY)
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user_commands.add_parser("list", help="list accounts")
    disable = user_commands.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("username")
    return parser


def _settings_with_flags(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    flag_to_env = {
        "host": "NOCTIS_HTTP_HOST",
        "port": "NOCTIS_HTTP_PORT",
        "data_dir": "NOCTIS_DATA_DIR",
        "mongo_url": "NOCTIS_MONGO_URL",
        "redis_url": "NOCTIS_REDIS_URL",
        "dicom_port": "NOCTIS_DICOM_PORT",
    }
    for flag, variable in flag_to_env.items():
        value = getattr(args, flag, None)
        if value is not None:
            env[variable] = str(value)
    return load_settings(env)


def _print_admin(username: str, password: str) -> None:
    bar = "=" * 72
    print(
        f"\n{bar}\nFirst start: created the administrator account.\n"
        f"  username: {username}\n  password: {password}\n"
        f"This password is shown once. Sign in and create personal accounts.\n{bar}\n",
        flush=True,
    )


def serve(settings: Settings) -> None:
    settings = ensure_secret_key(settings)
    configure_logging(settings.log_level)
    app = build_app(settings, AppOptions(on_admin_created=_print_admin))

    def announce(_: str) -> None:
        """Called by ``run_app`` once the port is bound, so the URL printed already answers."""
        base = f"http://{settings.http_host}:{settings.http_port}"
        store = "MongoDB" if settings.mongo_url else f"embedded, in {settings.data_dir}"
        print(
            f"Noctis is serving on {base}/ (store: {store}).\n"
            "Sign in: curl -X POST -H 'Content-Type: application/json' "
            f"""-d '{{"username":"admin","password":"..."}}' {base}/api/auth/login""",
            flush=True,
        )

    tune_garbage_collector()
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        print=announce,
        shutdown_timeout=10,
        access_log=None,
        loop=new_event_loop(),
    )


async def _user_command(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        await ensure_indexes(store, INDEXES)
        users = Users(store)
        if args.user_command == "add":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"Password for {args.username}: ")
                if password != getpass.getpass("Repeat it: "):
                    print("The passwords differ.", file=sys.stderr)
                    return 2
            user = await users.create(
                args.username, password, Role(args.role), args.facility, args.display_name
            )
            print(f"created {user.username} ({user.role.value}, facility {user.facility})")
        elif args.user_command == "list":
            for user in await users.all():
                state = "disabled" if user.disabled else "active"
                print(f"{user.username}\t{user.role.value}\t{user.facility}\t{state}")
        elif args.user_command == "disable":
            sessions = Sessions(store, settings.refresh_token_ttl_s)
            user = await users.update(args.username, {"disabled": True})
            await sessions.revoke_all(user.id, "account_disabled")
            print(f"disabled {user.username}; their sessions are ended")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings_with_flags(args)
        if args.command == "serve":
            serve(settings)
            return 0
        if args.command == "import":
            return asyncio.run(run_import(settings, Path(args.path), args.facility))
        return asyncio.run(_user_command(settings, args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
