"""What environment systemd would give a unit, read from a node's file tree (no systemd needed).

Precedence, lowest first (systemd.exec(5) "Environment variables in spawned processes"):
``DefaultEnvironment=`` (system.conf + system.conf.d) < the unit's ``Environment=`` (unit file, then drop-ins in
file-name order) < ``EnvironmentFile=`` (in order). Same-named drop-ins in /etc shadow /run shadow /usr/lib.

The parsers follow systemd's own rules closely enough to catch real mistakes:
``Environment="A=b c" D=e`` (quotes around or inside words, C escapes, ``%%`` specifier), an empty
``Environment=`` resets the list, invalid assignments are ignored, ``-`` before an EnvironmentFile path means
"ignore if missing", env files take ``KEY=value`` / ``KEY="value"`` / ``KEY='value'`` lines (``export`` is NOT
understood: such a line is ignored, as systemd ignores it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")
MANAGER_CONF_DIRS = ("etc/systemd/system.conf.d", "run/systemd/system.conf.d", "usr/lib/systemd/system.conf.d")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'", "s": " ",
}  # fmt: skip


class SystemdSyntaxError(ValueError):
    """A line systemd would reject (it logs and ignores it; the simulation refuses, to surface the mistake)."""


@dataclass
class UnitEnvironment:
    """The derived environment of one unit and where each piece came from."""

    unit: str
    env: dict[str, str]
    sources: list[str] = field(default_factory=list)  # files read, lowest precedence first
    ignored: list[str] = field(default_factory=list)  # assignments systemd would ignore, with the reason


def parse_unit_lines(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` triples of a unit/conf file: comments, continuation lines, whitespace handled."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if pending and line[:1] in ("#", ";"):
            continue  # comment lines inside a continuation are skipped, like systemd >= 240
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" not in line:
            raise SystemdSyntaxError(f"not a KEY=VALUE line in [{section}]: {line!r}")
        key, value = line.split("=", 1)
        entries.append((section, key.strip(), value.strip()))
    if pending:
        raise SystemdSyntaxError("file ends inside a continuation line")
    return entries


def _cunescape_one(text: str, i: int) -> tuple[str, int]:
    """Decode the escape starting after a backslash at ``text[i]``; return (chars, new index)."""
    c = text[i]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 1
    if c == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 1 : i + 3]):
        return chr(int(text[i + 1 : i + 3], 16)), i + 3
    if c in "01234567" and re.fullmatch(r"[0-7]{3}", text[i : i + 3]):
        return chr(int(text[i : i + 3], 8)), i + 3
    if c == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 1 : i + 5]):
        return chr(int(text[i + 1 : i + 5], 16)), i + 5
    raise SystemdSyntaxError(f"invalid escape \\{c}")


def split_words(value: str) -> list[str]:
    """systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) applied until the value is used up.

    Example: ``'"A=b c" D=e\\tf'`` -> ``["A=b c", "D=e<TAB>f"]``; ``A="x y"`` -> ``["A=x y"]``.
    """
    words: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t\n\r":
            i += 1
        if i >= n:
            return words
        word: list[str] = []
        quote = ""
        while i < n:
            c = value[i]
            if c == "\\":
                if i + 1 >= n:
                    raise SystemdSyntaxError("trailing backslash")
                decoded, i = _cunescape_one(value, i + 1)
                word.append(decoded)
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "'\"":
                quote = c
            elif c in " \t\n\r":
                break
            else:
                word.append(c)
            i += 1
        if quote:
            raise SystemdSyntaxError(f"unterminated quote in {value!r}")
        words.append("".join(word))


def expand_specifiers(value: str, unit: str) -> str:
    """Unit-file specifiers in Environment=: ``%%`` -> ``%``, ``%n``/``%N``/``%p``; anything else is refused."""
    name = unit if "." in unit else f"{unit}.service"
    table = {"%": "%", "n": name, "N": name.rsplit(".", 1)[0], "p": name.rsplit(".", 1)[0].split("@", 1)[0]}

    def one(match: re.Match[str]) -> str:
        spec = match.group(1)
        if spec not in table:
            raise SystemdSyntaxError(f"unsupported specifier %{spec} in {value!r}")
        return table[spec]

    return re.sub(r"%(.)", one, value)


def _assign(env: dict[str, str], words: Iterable[str], where: str, ignored: list[str]) -> None:
    for word in words:
        key, sep, val = word.partition("=")
        if not sep or not _NAME.match(key):
            ignored.append(f"{where}: invalid assignment {word!r}")
            continue
        env[key] = val


def parse_environment_file(text: str) -> tuple[dict[str, str], list[str]]:
    """An EnvironmentFile= (systemd's env-file parser); returns (variables, ignored lines with reasons)."""
    env: dict[str, str] = {}
    ignored: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#;":
            continue
        key, sep, rest = line.partition("=")
        key = key.rstrip()
        if not sep or not _NAME.match(key):
            ignored.append(f"invalid line {line!r}")
            continue
        value: list[str] = []
        j = 0
        rest = rest.lstrip()
        trailing_ws_from = 0
        while True:
            if j >= len(rest):
                break
            c = rest[j]
            if c == "'":
                end = rest.find("'", j + 1)
                while end < 0 and i < len(lines):
                    rest += "\n" + lines[i]
                    i += 1
                    end = rest.find("'", j + 1)
                if end < 0:
                    raise SystemdSyntaxError(f"unterminated ' in {key}")
                value.append(rest[j + 1 : end])
                j = end + 1
                trailing_ws_from = len("".join(value))
            elif c == '"':
                j += 1
                while True:
                    if j >= len(rest):
                        if i >= len(lines):
                            raise SystemdSyntaxError(f'unterminated " in {key}')
                        rest += "\n" + lines[i]
                        i += 1
                        continue
                    c = rest[j]
                    if c == '"':
                        j += 1
                        break
                    if c == "\\" and j + 1 < len(rest) and rest[j + 1] in '"\\`$':
                        value.append(rest[j + 1])
                        j += 2
                    elif c == "\\" and j + 1 >= len(rest):
                        j += 1  # escaped newline: continuation
                        if i < len(lines):
                            rest += lines[i]
                            i += 1
                    else:
                        value.append(c)
                        j += 1
                trailing_ws_from = len("".join(value))
            elif c == "\\":
                if j + 1 < len(rest):
                    value.append(rest[j + 1])
                    j += 2
                else:
                    j += 1  # continuation
                    if i < len(lines):
                        rest += lines[i]
                        i += 1
                trailing_ws_from = len("".join(value))
            else:
                value.append(c)
                j += 1
        joined = "".join(value)
        # Unquoted trailing whitespace is dropped; quoted/escaped text is kept as is.
        env[key] = joined[:trailing_ws_from] + joined[trailing_ws_from:].rstrip()
    return env, ignored


def _dropins(root: Path, directory_name: str, dirs: Iterable[str]) -> list[Path]:
    """``*.conf`` files under ``dirs``/``directory_name``; a name in an earlier dir shadows later ones."""
    chosen: dict[str, Path] = {}
    for base in dirs:
        d = root / base / directory_name
        if d.is_dir():
            for f in d.glob("*.conf"):
                chosen.setdefault(f.name, f)
    return [chosen[name] for name in sorted(chosen)]


def manager_default_environment(root: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """DefaultEnvironment= from /etc/systemd/system.conf and system.conf.d drop-ins (no specifier expansion)."""
    env: dict[str, str] = {}
    sources: list[str] = []
    ignored: list[str] = []
    files = [root / "etc/systemd/system.conf", *_dropins(root, "", MANAGER_CONF_DIRS)]
    for f in files:
        if not f.is_file():
            continue
        sources.append("/" + str(f.relative_to(root)))
        for section, key, value in parse_unit_lines(f.read_text()):
            if section == "Manager" and key == "DefaultEnvironment":
                if not value:
                    env.clear()
                    continue
                _assign(env, split_words(value), sources[-1], ignored)
    return env, sources, ignored


def unit_environment(root: Path, unit: str) -> UnitEnvironment:
    """The environment ``unit`` (e.g. ``containerd`` or ``kubelet.service``) would be started with."""
    name = unit if "." in unit else f"{unit}.service"
    env, sources, ignored = manager_default_environment(root)
    files: list[Path] = []
    for base in UNIT_DIRS:
        if (root / base / name).is_file():
            files.append(root / base / name)
            break
    files += _dropins(root, f"{name}.d", UNIT_DIRS)
    assignments: dict[str, str] = {}
    env_files: list[str] = []
    for f in files:
        where = "/" + str(f.relative_to(root))
        sources.append(where)
        for section, key, value in parse_unit_lines(f.read_text()):
            if section != "Service":
                continue
            if key == "Environment":
                if not value:
                    assignments.clear()
                    continue
                _assign(assignments, split_words(expand_specifiers(value, name)), where, ignored)
            elif key == "EnvironmentFile":
                if not value:
                    env_files.clear()
                    continue
                env_files.append(expand_specifiers(value, name))
    env.update(assignments)
    for spec in env_files:
        optional = spec.startswith("-")
        path = spec.removeprefix("-")
        if not path.startswith("/"):
            raise SystemdSyntaxError(f"EnvironmentFile= needs an absolute path: {spec!r}")
        f = root / path.lstrip("/")
        if not f.is_file():
            if optional:
                continue
            raise SystemdSyntaxError(f"{name} would fail to start: EnvironmentFile={path} is missing")
        sources.append(path)
        values, bad = parse_environment_file(f.read_text())
        env.update(values)
        ignored += [f"{path}: {b}" for b in bad]
    return UnitEnvironment(name, env, sources, ignored)
