"""A string that never shows itself, and a traitlets trait that holds one.

``%config SandboxMagics`` prints every trait's current value with ``repr``; storing
the API key as `SecretStr` keeps it out of that listing, of tracebacks that show
locals, and of any repr that contains it.
"""

from __future__ import annotations

from typing import Any

from traitlets import TraitType

__all__ = ["Secret", "SecretStr"]


class SecretStr:
    """Holds a secret string; ``str`` and ``repr`` show only that one is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("SecretStr", self._value))

    def __repr__(self) -> str:
        return "SecretStr('********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("A SecretStr cannot be pickled.")


class Secret(TraitType[SecretStr | None, SecretStr | str | None]):
    """A trait that accepts a str (or None) and stores it as `SecretStr`."""

    default_value = None
    info_text = "a secret string (never shown)"

    def validate(self, obj: Any, value: Any) -> SecretStr | None:
        if value is None or isinstance(value, SecretStr):
            return value
        if isinstance(value, str):
            return SecretStr(value)
        self.error(obj, "<hidden>")
