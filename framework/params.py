"""Typed parameters: what machines, workloads and plugins accept through ``--set``.

A component declares a tuple of :class:`Param`; :func:`resolve` turns the user's strings into
typed values (checking type, range and choices) and fills in defaults. Every resolved value
ends up in the run's JSON ``params`` so a result says exactly what produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from framework.errors import BadParameter, UnknownName

# The --set scopes that are not a workload or plugin name (framework/config.py resolves them).
FIXED_SCOPES: tuple[str, ...] = ("machine", "costs", "faults", "tlb")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@attrs.frozen(slots=True)
class Param:
    """One typed parameter.

    :param name: the key used in ``--set SCOPE.name=VALUE``.
    :param type: ``int``, ``float``, ``bool`` or ``str``.
    :param default: the value when the user sets nothing.
    :param help: one line, with the unit.
    :param choices: allowed values for a ``str`` parameter, or None for any.
    :param min: smallest allowed number, or None.
    :param max: largest allowed number, or None.
    :param check: a further test of the converted value, raising ``ValueError`` when it is
        not allowed (a comma list of orders); the error then names ``describe``.
    :param describe: what is allowed, in words, when ``check`` is given.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    check: Callable[[Any], object] | None = None
    describe: str | None = None

    def allowed(self) -> str:
        """Describe the allowed values in words, for error messages and ``framework list``."""
        if self.describe is not None:
            return self.describe
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = {int: "an integer", float: "a number", bool: "a boolean (0/1)", str: "a string"}
        text = kind.get(self.type, self.type.__name__)
        low, high = self._show(self.min), self._show(self.max)
        if low is not None and high is not None:
            return f"{text} from {low} to {high}"
        if low is not None:
            return f"{text} >= {low}"
        if high is not None:
            return f"{text} <= {high}"
        return text

    def _show(self, bound: float | None) -> str | None:
        if bound is None:
            return None
        return str(int(bound)) if self.type is int else f"{bound:g}"

    def show_default(self) -> str:
        """The default as it would be typed after ``--set SCOPE.KEY=``."""
        if self.type is bool:
            return "1" if self.default else "0"
        return str(self.default)

    def parse(self, scope: str, raw: Any) -> Any:
        """Convert ``raw`` (a string from the CLI, or an already typed value) and check it.

        :raises BadParameter: naming ``scope.name``, the bad value and what is allowed.
        """
        where = f"{scope}.{self.name}"
        try:
            value = self._convert(raw)
            if self.check is not None:
                self.check(value)
        except (TypeError, ValueError, OverflowError):
            raise BadParameter(f"{where}={_shown(raw)}: expected {self.allowed()}") from None
        self._check(where, value)
        return value

    def _convert(self, raw: Any) -> Any:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(raw)
        if self.type is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            if isinstance(raw, int):
                return raw
            return int(str(raw).strip(), 0)
        if self.type is float:
            value = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return value
        return str(raw)

    def _check(self, where: str, value: Any) -> None:
        bad = (
            (self.choices is not None and value not in self.choices)
            or (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        )
        if bad:
            raise BadParameter(f"{where}={_shown(value)}: expected {self.allowed()}")


def _shown(raw: Any, limit: int = 60) -> str:
    """``raw`` quoted for a one-line message, cut short (a pasted file is not echoed whole)."""
    text = repr(raw)
    return text if len(text) <= limit else text[:limit] + "...'"


def resolve(
    scope: str,
    params: Iterable[Param],
    given: Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve ``given`` against ``params``: defaults (or ``base``) for what is unset.

    :param scope: the ``--set`` scope, for error messages.
    :param base: values that replace the declared defaults (a machine preset's figures).
    :raises UnknownName: for a key that is not declared, listing the declared ones.
    :raises BadParameter: for a value of the wrong type or out of range.
    """
    declared = {p.name: p for p in params}
    for key in given:
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise UnknownName(f"unknown parameter {scope}.{key}: {scope} takes {allowed}")
    out: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            out[name] = param.parse(scope, given[name])
        elif base is not None and name in base:
            out[name] = base[name]
        else:
            out[name] = param.default
    return out


def parse_set(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """Split ``SCOPE.KEY=VALUE`` strings into ``{scope: {key: value}}``.

    The scope may itself contain dashes (``gfp-unmapped.variant=fixed``); the key is what
    follows the first dot.

    :raises BadParameter: for an item without ``=`` or without a dot before it.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        head, eq, value = item.partition("=")
        scope, dot, key = head.partition(".")
        if not eq or not dot or not scope.strip() or not key.strip():
            raise BadParameter(f"malformed --set {item!r}: expected SCOPE.KEY=VALUE")
        out.setdefault(scope.strip(), {})[key.strip()] = value
    return out
