"""A small evaluator for the part of the CloudWatch Logs Insights query language our saved queries and the dashboard's
log widget use, so tests can run them over the JSON log lines the functions really write.

Supported (as documented in the CloudWatch Logs Insights query syntax reference):
- `# comment` lines; `SOURCE '<log group>'` commands of a dashboard log widget (ignored: the caller picks the lines);
- `fields a, b, @timestamp` (the displayed columns; every field stays available to later commands);
- `filter <expression>` with `and`, `or`, `not`, parentheses, `=`, `!=`, `<`, `>`, `like` / `not like` with a
  `/regex/` (searched) or a "string" (substring), `in [...]` / `not in [...]`, `ispresent(field)`;
- `stats agg(...) [as name], ... by f1, f2` with `count(*)`, `count(f)`, `latest(f)`, `earliest(f)`, `max(f)`,
  `min(f)` (`latest` takes the value of the row with the greatest @timestamp, as Logs Insights does);
- `sort <field> [asc|desc]` and `limit <n>`.

Anything else raises `UnsupportedQuery`: a test never passes by ignoring a command it does not understand.
Events are dicts of the JSON log line, nested objects flattened with dots (as Logs Insights discovers JSON fields),
plus `@timestamp` (epoch milliseconds, from Powertools' `timestamp` or the event's order) and `@message`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

Row = dict[str, Any]


def _either(a: Callable[[Row], Any], b: Callable[[Row], Any]) -> Callable[[Row], bool]:
    return lambda row: bool(a(row)) or bool(b(row))


def _both(a: Callable[[Row], Any], b: Callable[[Row], Any]) -> Callable[[Row], bool]:
    return lambda row: bool(a(row)) and bool(b(row))


def _compared(
    left: Callable[[Row], Any], compare: Callable[[Any, Any], bool], right: Callable[[Row], Any]
) -> Callable[[Row], bool]:
    return lambda row: left(row) is not None and compare(left(row), right(row))


class UnsupportedQuery(ValueError):
    """The query uses something this evaluator does not implement."""


def events_from_lines(lines: Iterable[str]) -> list[Row]:
    """The JSON log lines (non-JSON lines, such as EMF-less text, are skipped) as Logs Insights events."""
    events: list[Row] = []
    for index, line in enumerate(lines):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" in document:
            continue  # EMF metric blobs go to CloudWatch metrics; they are log events too, but no query wants them
        event: Row = {"@message": line}
        _flatten(document, "", event)
        event["@timestamp"] = _timestamp(document.get("timestamp"), index)
        events.append(event)
    return events


def _flatten(node: Any, prefix: str, out: Row) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}.", out)
    else:
        out[prefix[:-1]] = node


def _timestamp(value: Any, index: int) -> float:
    if isinstance(value, str):
        for pattern in ("%Y-%m-%d %H:%M:%S,%f%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return datetime.strptime(value, pattern).timestamp() * 1000 + index * 1e-6
            except ValueError:
                continue
    return float(index)


# ---------------------------------------------------------------------------------------------------------- parsing
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<regex>/(?:\\.|[^/\\])*/)
      | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>|\(|\)|\[|\]|,|\*)
      | (?P<name>[@A-Za-z_][\w.@-]*)
    )""",
    re.X,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise UnsupportedQuery(f"cannot read {text[position : position + 30]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def _commands(query: str) -> list[str]:
    """The `|`-separated commands, comments removed, `|` inside strings and regexes kept."""
    body = "\n".join(line for line in query.splitlines() if not line.strip().startswith("#"))
    commands, current, quote = [], [], ""
    for char in body:
        if quote:
            current.append(char)
            if char == quote and (len(current) < 2 or current[-2] != "\\"):
                quote = ""
        elif char in "\"'/":
            quote = char
            current.append(char)
        elif char == "|":
            commands.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    commands.append("".join(current).strip())
    return [c for c in commands if c]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, value: str | None = None) -> bool:
        if self.at >= len(self.tokens):
            return False
        return value is None or self.tokens[self.at][1].lower() == value

    def take(self, value: str | None = None) -> tuple[str, str]:
        if not self.peek(value):
            raise UnsupportedQuery(f"expected {value or 'more'} at {self.tokens[self.at : self.at + 3]}")
        token = self.tokens[self.at]
        self.at += 1
        return token

    # expression := or
    def expression(self) -> Callable[[Row], Any]:
        left = self.conjunction()
        while self.peek("or"):
            self.take()
            left = _either(left, self.conjunction())
        return left

    def conjunction(self) -> Callable[[Row], Any]:
        left = self.negation()
        while self.peek("and"):
            self.take()
            left = _both(left, self.negation())
        return left

    def negation(self) -> Callable[[Row], Any]:
        if self.peek("not"):
            self.take()
            inner = self.negation()
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self) -> Callable[[Row], Any]:
        left = self.operand()
        negate = False
        if (
            self.peek("not")
            and self.at + 1 < len(self.tokens)
            and self.tokens[self.at + 1][1].lower() in {"like", "in"}
        ):
            self.take()
            negate = True
        if self.peek("like"):
            self.take()
            kind, text = self.take()
            test = _like(kind, text)
            return lambda row: (left(row) is not None and test(str(left(row)))) != negate
        if self.peek("in"):
            self.take()
            values = self.literal_list()
            return lambda row: (left(row) in values) != negate
        for op, fn in _COMPARE.items():
            if self.peek(op):
                self.take()
                return _compared(left, fn, self.operand())
        return left

    def literal_list(self) -> list[Any]:
        self.take("[")
        values: list[Any] = []
        while not self.peek("]"):
            kind, text = self.take()
            values.append(_literal(kind, text))
            if self.peek(","):
                self.take()
        self.take("]")
        return values

    def operand(self) -> Callable[[Row], Any]:
        if self.peek("("):
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        kind, text = self.take()
        if kind == "name" and self.peek("("):
            if text.lower() != "ispresent":
                raise UnsupportedQuery(f"function {text}() is not supported")
            self.take("(")
            _, field = self.take()
            self.take(")")
            return lambda row: row.get(field) is not None
        if kind == "name":
            return lambda row: row.get(text)
        value = _literal(kind, text)
        return lambda row: value


def _literal(kind: str, text: str) -> Any:
    if kind == "string":
        return text[1:-1].replace('\\"', '"').replace("\\'", "'")
    if kind == "number":
        return float(text) if "." in text else int(text)
    raise UnsupportedQuery(f"expected a literal, got {text!r}")


def _like(kind: str, text: str) -> Callable[[str], bool]:
    if kind == "regex":
        pattern = re.compile(text[1:-1])
        return lambda value: bool(pattern.search(value))
    if kind == "string":
        needle = _literal(kind, text)
        return lambda value: needle in value
    raise UnsupportedQuery(f"like needs a /regex/ or a string, got {text!r}")


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a, b
    return str(a), str(b)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "!=": lambda a, b: a != b,
    "=": lambda a, b: a == b,
    "<=": lambda a, b: _ordered(a, b)[0] <= _ordered(a, b)[1],
    ">=": lambda a, b: _ordered(a, b)[0] >= _ordered(a, b)[1],
    "<": lambda a, b: _ordered(a, b)[0] < _ordered(a, b)[1],
    ">": lambda a, b: _ordered(a, b)[0] > _ordered(a, b)[1],
}


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


_AGGREGATE = re.compile(r"^(?P<fn>\w+)\((?P<arg>[^)]*)\)(?:\s+as\s+(?P<alias>[\w@.]+))?$", re.I)


def _stats(rows: list[Row], spec: str) -> list[Row]:
    parts = re.split(r"\s+by\s+", spec, maxsplit=1, flags=re.I)
    aggregates_text, by_text = parts[0], parts[1] if len(parts) > 1 else ""
    keys = _names(by_text)
    aggregates = []
    for item in re.split(r",\s*(?![^()]*\))", aggregates_text):
        match = _AGGREGATE.match(item.strip())
        if not match:
            raise UnsupportedQuery(f"stats {item!r} is not supported")
        fn, arg = match["fn"].lower(), match["arg"].strip()
        if fn not in {"count", "latest", "earliest", "max", "min"}:
            raise UnsupportedQuery(f"stats function {fn} is not supported")
        aggregates.append((fn, arg, match["alias"] or f"{fn}({arg})"))
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    out: list[Row] = []
    for key, members in groups.items():
        result: Row = dict(zip(keys, key, strict=True))
        by_time = sorted(members, key=lambda r: r["@timestamp"])
        for fn, arg, alias in aggregates:
            present = [r for r in by_time if arg == "*" or r.get(arg) is not None]
            if fn == "count":
                result[alias] = len(present)
            elif fn == "latest":
                result[alias] = present[-1][arg] if present else None
            elif fn == "earliest":
                result[alias] = present[0][arg] if present else None
            else:
                values = [r[arg] for r in present]
                result[alias] = (max if fn == "max" else min)(values) if values else None
        out.append(result)
    return out


def run_query(query: str, events: list[Row]) -> list[Row]:
    """The rows `query` returns over `events` (dicts; all fields kept, `fields` only names the columns)."""
    rows = [dict(e) for e in events]
    for command in _commands(query):
        word, _, rest = command.partition(" ")
        word = word.lower()
        rest = rest.strip()
        if word == "source":
            continue
        if word in {"fields", "display"}:
            continue
        if word == "filter":
            parser = _Parser(_tokens(rest))
            predicate = parser.expression()
            if parser.at != len(parser.tokens):
                raise UnsupportedQuery(f"unread tail in filter: {parser.tokens[parser.at :]}")
            rows = [row for row in rows if predicate(row)]
        elif word == "stats":
            rows = _stats(rows, rest)
        elif word == "sort":
            field, _, direction = rest.partition(" ")
            descending = direction.strip().lower() == "desc"
            present = [r for r in rows if r.get(field) is not None]
            missing = [r for r in rows if r.get(field) is None]
            rows = sorted(present, key=lambda r: _ordered(r[field], r[field])[0], reverse=descending) + missing
        elif word == "limit":
            rows = rows[: int(rest)]
        else:
            raise UnsupportedQuery(f"command {word!r} is not supported")
    return rows
