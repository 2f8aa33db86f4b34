"""``sandbox-magic keys add|list|revoke|quota``: the teacher's key commands.

They work on ``<state-dir>/keys.db`` directly, so they work whether or not the server
runs; a running server sees the change on its next request. A new key is printed
once, on its own line, and never again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sandbox_magic.server.classroom.keys import KeyRecord, KeyStore
from sandbox_magic.server.classroom.quotas import QUOTA_NAMES, parse_overrides

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the server's state directory (default ~/.local/state/sandbox-magic)",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="make a key for NAME and print it once")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--admin", action="store_true", help="a teacher's key: sees everything")
    add.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"override a quota for this key (repeatable; N or 'none'): {_quota_list()}",
    )
    actions.add_parser("list", help="list the keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke NAME's key; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    quota = actions.add_parser("quota", help="change quotas of NAME's key")
    quota.add_argument("name", metavar="NAME")
    quota.add_argument("quota", nargs="+", metavar="NAME=N")


def _quota_list() -> str:
    return ", ".join(sorted(QUOTA_NAMES))


def _parse_quotas(items: list[str]) -> dict[str, int | None]:
    raw: dict[str, int | None] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: write a quota as NAME=N, e.g. contexts=2.")
        if value.strip().lower() in ("none", "unlimited"):
            raw[name.strip()] = None
            continue
        try:
            raw[name.strip()] = int(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a whole number.") from None
    return parse_overrides(raw)


def _describe(record: KeyRecord) -> str:
    role = "admin" if record.admin else "student"
    state = "active" if record.is_active else f"revoked {record.revoked_at}"
    quotas = ", ".join(f"{k}={v}" for k, v in sorted(record.quotas.items())) or "defaults"
    used = record.last_used_at or "never"
    return f"{record.name:<20} {record.prefix:<17} {role:<7} {state:<10} last used {used}; {quotas}"


def run(args: argparse.Namespace) -> int:
    from sandbox_magic.server.main import default_state_dir

    state_dir = (args.state_dir or default_state_dir()).expanduser().resolve()
    store = KeyStore(state_dir)
    try:
        return _act(store, args)
    except ValueError as error:
        print(f"sandbox-magic keys: {error}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _act(store: KeyStore, args: argparse.Namespace) -> int:
    if args.action == "add":
        made = store.add(args.name, admin=args.admin, quotas=_parse_quotas(args.quota))
        print(made.key)
        print(
            f"  the key of {made.record.name} (shown once; stored only as a hash)",
            file=sys.stderr,
        )
        return 0
    if args.action == "list":
        records = store.all()
        if not records:
            print("no keys yet: sandbox-magic keys add NAME")
        for record in records:
            print(_describe(record))
        return 0
    if args.action == "revoke":
        if store.revoke_name(args.name) is None:
            print(f"sandbox-magic keys: {args.name!r} has no active key", file=sys.stderr)
            return 1
        print(f"revoked the key of {args.name}")
        return 0
    changed = store.set_quotas(args.name, _parse_quotas(args.quota))
    if changed is None:
        print(f"sandbox-magic keys: {args.name!r} has no active key", file=sys.stderr)
        return 1
    print(_describe(changed))
    return 0
