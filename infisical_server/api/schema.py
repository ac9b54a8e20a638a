"""Request validation that reports failures the way zod does (Infisical validates every route with zod).

A :class:`Parser` reads one object (body, query or params); every problem becomes a zod-shaped issue
(``{code, message, path, ...}``) and :meth:`Parser.check` raises them together as a 422. Unknown keys
are ignored, as ``z.object`` strips them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, TypeVar, Unpack

from infisical_server.errors import ValidationFailure
from infisical_server.paths import js_trim

T = TypeVar("T")
Issue = dict[str, Any]
Refinement = tuple[Callable[[str], bool], str]
PathPart = str | int


class StringRules(TypedDict, total=False):
    """The rules :meth:`Parser.text` and :meth:`Parser.optional_text` share (see ``Parser._string``)."""

    trim: bool
    """Trim JavaScript white space first (default true)."""
    min_length: int
    max_length: int | None
    max_message: str | None
    """The ``too_big`` message, instead of zod's."""
    refinements: Sequence[Refinement]
    """Predicates with the message of the custom issue each adds when it fails."""
    transform: Callable[[str], str] | None
    """Applied to a valid value (and to a default)."""


def received_type(value: object) -> str:
    """zod's name for the type of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote_options(options: Sequence[str]) -> str:
    return " | ".join(f"'{option}'" for option in options)


class Parser:
    """Reads fields of one object, collecting zod-style issues into a shared list."""

    def __init__(self, data: object, path: tuple[PathPart, ...] = (), issues: list[Issue] | None = None) -> None:
        self.issues: list[Issue] = [] if issues is None else issues
        self.path = path
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self._invalid_type(path, "object", data, missing=data is None)

    # --- issue helpers ---------------------------------------------------------------------------

    def _add(self, issue: Issue) -> None:
        self.issues.append(issue)

    def _invalid_type(self, path: Sequence[PathPart], expected: str, value: object, *, missing: bool) -> None:
        received = "undefined" if missing else received_type(value)
        message = "Required" if missing else f"Expected {expected}, received {received}"
        self._add(
            {
                "code": "invalid_type",
                "expected": expected,
                "received": received,
                "path": list(path),
                "message": message,
            }
        )

    def _size(self, path: list[PathPart], bound: str, limit: int, kind: str, message: str) -> None:
        """zod's ``too_small`` (``bound`` "minimum") or ``too_big`` ("maximum") issue for a string or array."""
        code = "too_small" if bound == "minimum" else "too_big"
        self._add(
            {
                "code": code,
                bound: limit,
                "type": kind,
                "inclusive": True,
                "exact": False,
                "message": message,
                "path": path,
            }
        )

    def custom(self, key: str, message: str) -> None:
        self._add({"code": "custom", "message": message, "path": [*self.path, key]})

    def check(self) -> None:
        """Raise the collected issues as Infisical's 422 ValidationFailure."""
        if self.issues:
            raise ValidationFailure(list(self.issues))

    # --- field readers ---------------------------------------------------------------------------

    def present(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, *, default: str | None = None, **rules: Unpack[StringRules]) -> str:
        """A required string (or one with a ``default``); "" when invalid, as :meth:`check` will raise."""
        value = self._string(key, default=default, optional=False, nullable=False, **rules)
        return "" if value is None else value

    def optional_text(self, key: str, *, nullable: bool = False, **rules: Unpack[StringRules]) -> str | None:
        """An optional string: None when missing (or null, if ``nullable``)."""
        return self._string(key, default=None, optional=True, nullable=nullable, **rules)

    def _string(
        self,
        key: str,
        *,
        default: str | None,
        optional: bool,
        nullable: bool,
        trim: bool = True,
        min_length: int = 0,
        max_length: int | None = None,
        max_message: str | None = None,
        refinements: Sequence[Refinement] = (),
        transform: Callable[[str], str] | None = None,
    ) -> str | None:
        path = [*self.path, key]
        if key not in self.data:
            if default is not None:
                return transform(default) if transform else default
            if not optional:
                self._invalid_type(path, "string", None, missing=True)
            return None
        value = self.data[key]
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self._invalid_type(path, "string", value, missing=False)
            return None
        text = js_trim(value) if trim else value
        if len(text) < min_length:
            self._size(path, "minimum", min_length, "string", f"String must contain at least {min_length} character(s)")
            return None
        if max_length is not None and len(text) > max_length:
            message = max_message or f"String must contain at most {max_length} character(s)"
            self._size(path, "maximum", max_length, "string", message)
            return None
        failed = False
        for predicate, message in refinements:
            if not predicate(text):
                self._add({"code": "custom", "message": message, "path": path})
                failed = True
        if failed:
            return None
        return transform(text) if transform else text

    def boolean(self, key: str, *, default: bool | None = None, nullable: bool = False) -> bool | None:
        """A JSON boolean; missing -> default (None when no default)."""
        if key not in self.data:
            return default
        value = self.data[key]
        if value is None and nullable:
            return None
        if not isinstance(value, bool):
            self._invalid_type([*self.path, key], "boolean", value, missing=False)
            return None
        return value

    def number(self, key: str, *, nullable: bool = False) -> float | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._invalid_type([*self.path, key], "number", value, missing=False)
            return None
        return float(value)

    def coerced_number(self, key: str) -> int | None:
        """``z.coerce.number().optional()`` for a query parameter."""
        if key not in self.data:
            return None
        raw = self.data[key]
        try:
            number = float(raw)
        except (TypeError, ValueError):
            self._add(
                {
                    "code": "invalid_type",
                    "expected": "number",
                    "received": "nan",
                    "path": [*self.path, key],
                    "message": "Expected number, received nan",
                }
            )
            return None
        return int(number)

    def enum(self, key: str, options: Sequence[str], *, default: str) -> str:
        if key not in self.data:
            return default
        value = self.data[key]
        if value not in options:
            if isinstance(value, str):
                self._add(
                    {
                        "received": value,
                        "code": "invalid_enum_value",
                        "options": list(options),
                        "path": [*self.path, key],
                        "message": (f"Invalid enum value. Expected {_quote_options(options)}, received '{value}'"),
                    }
                )
            else:
                self._invalid_type([*self.path, key], _quote_options(options), value, missing=False)
            return default
        return str(value)

    def string_boolean(self, key: str, *, default: bool) -> bool:
        """The raw secret routes' ``convertStringBoolean``: only the strings "true" and "false"."""
        return self.enum(key, ("true", "false"), default="true" if default else "false") == "true"

    def loose_boolean(self, key: str, *, default: bool) -> bool:
        """The folder routes' ``booleanSchema``: any non-empty string but "0"/"false" is true."""
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool):
            return value
        if not isinstance(value, str):
            self._invalid_type([*self.path, key], "boolean", value, missing=False)
            return default
        text = js_trim(value)
        if not text or text.lower() == "false":
            return False
        try:
            return float(text) != 0
        except ValueError:
            return True

    def datetime_string(self, key: str) -> datetime | None:
        """``z.string().datetime().optional()``: ISO 8601 in UTC (``Z``)."""
        text = self.optional_text(key)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00") if text.endswith("Z") else None
        except ValueError:
            parsed = None
        if parsed is None:
            self._add(
                {
                    "code": "invalid_string",
                    "validation": "datetime",
                    "message": "Invalid datetime",
                    "path": [*self.path, key],
                }
            )
        return parsed

    def string_list(self, key: str) -> list[str] | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, list):
            self._invalid_type([*self.path, key], "array", value, missing=False)
            return None
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self._invalid_type([*self.path, key, index], "string", item, missing=False)
                return None
        return list(value)

    def raw(self, key: str) -> object:
        """A field accepted but not interpreted (e.g. ``secretMetadata``)."""
        return self.data.get(key)

    def objects(self, key: str, read: Callable[[Parser], T], *, min_items: int = 0) -> list[T]:
        """An array of objects, each read with ``read`` on a child parser sharing the issue list."""
        path = [*self.path, key]
        if key not in self.data:
            self._invalid_type(path, "array", None, missing=True)
            return []
        value = self.data[key]
        if not isinstance(value, list):
            self._invalid_type(path, "array", value, missing=False)
            return []
        if len(value) < min_items:
            self._size(path, "minimum", min_items, "array", f"Array must contain at least {min_items} element(s)")
            return []
        return [read(Parser(item, (*self.path, key, index), self.issues)) for index, item in enumerate(value)]
