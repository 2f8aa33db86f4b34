"""The options of one ``%%sandbox`` cell, validated into a typed record."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from IPython.core.error import UsageError

__all__ = ["RunOptions", "parse_run_options", "split_names"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RunOptions:
    """What one ``%%sandbox`` cell asked for."""

    context: str = "default"
    timeout: int | None = None
    envs: dict[str, str] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    sandbox: str | None = None
    language: str | None = None
    out: str | None = None
    no_raise: bool = False
    quiet: bool = False
    background: bool = False
    push: tuple[str, ...] = ()
    pull: tuple[str, ...] = ()
    save_artifacts: str | None = None


def split_names(values: Sequence[str], option: str) -> tuple[str, ...]:
    """``["a,b", "c"]`` -> ``("a", "b", "c")``, each a Python identifier."""
    names: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name.isidentifier():
                raise UsageError(f"{option} takes Python variable names; {name!r} is not one.")
            if name not in names:
                names.append(name)
    return tuple(names)


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    envs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise UsageError(
                f"--env takes KEY=VALUE with KEY a variable name; got {pair!r}. "
                "For a secret use --secret-env NAME (its value is read from your environment)."
            )
        envs[name] = value
    return envs


def parse_run_options(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    default_secret_env: Sequence[str] = (),
) -> RunOptions:
    """Check the parsed arguments and resolve secrets from the local environment."""
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds; got {args.timeout}.")
    if args.out is not None and not args.out.isidentifier():
        raise UsageError(f"--out takes a Python variable name; {args.out!r} is not one.")
    if not args.context or not args.context.strip():
        raise UsageError("--context needs a name.")
    envs = _parse_env(args.env)
    secret_names = [*default_secret_env, *args.secret_env]
    secrets: list[str] = []
    for name in dict.fromkeys(secret_names):
        if not _ENV_NAME.match(name):
            raise UsageError(f"--secret-env takes an environment variable name; got {name!r}.")
        if name not in environ:
            raise UsageError(
                f"--secret-env {name}: no environment variable {name} is set in this kernel."
            )
        envs[name] = environ[name]
        secrets.append(environ[name])
    if args.background and (args.pull or args.out):
        raise UsageError("--background cannot be combined with --pull or --out.")
    return RunOptions(
        context=args.context.strip(),
        timeout=args.timeout,
        envs=envs,
        secret_names=tuple(dict.fromkeys(secret_names)),
        secret_values=tuple(secrets),
        sandbox=args.sandbox,
        language=args.language,
        out=args.out,
        no_raise=args.no_raise,
        quiet=args.quiet,
        background=args.background,
        push=split_names(args.push, "--push"),
        pull=split_names(args.pull, "--pull"),
        save_artifacts=args.save_artifacts,
    )
