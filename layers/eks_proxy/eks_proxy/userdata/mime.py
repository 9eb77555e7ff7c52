"""Byte-preserving MIME multipart split and join, for user data we must change without damaging.

Python's ``email`` package re-serializes what it parses (line endings, header folding, boundaries), so it is only
used here to read header blocks. A document is sliced into its exact byte spans: top-level headers, preamble, each
part (with the delimiter line before it, kept as found), the close delimiter and the epilogue. Joining the spans
gives the input back byte for byte; replacing or inserting a span touches nothing else.

A part's span runs from just after its delimiter line to the start of the next delimiter line, so it includes the
line ending that RFC 2046 assigns to the next delimiter: parsers strip exactly one line ending there, which is why
:func:`build_part` ends every part we write with one extra line ending.

Like cloud-init, a document is treated as MIME when ``MIME-Version:`` appears in its first 4,096 bytes. Anything
we cannot slice unambiguously (no multipart Content-Type, no boundary, no close delimiter) raises
:class:`MimeError`: we never guess.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

MIME_SNIFF_BYTES = 4096
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")  # RFC 5322 field name (printable, no colon) then a colon


class MimeError(ValueError):
    """The document claims to be MIME but cannot be split safely; one line, says why."""


@dataclass(frozen=True)
class MimePart:
    """One part: the delimiter line before it (as found) and its exact bytes (headers, blank line, body)."""

    delimiter: bytes
    raw: bytes

    def headers(self) -> Message:
        """The part's header block, parsed (body ignored)."""
        return parse_headers(self.raw)

    def body(self) -> bytes:
        """The bytes after the part's header block (including the line ending owned by the next delimiter)."""
        end = header_block_end(self.raw)
        return self.raw[end:] if end is not None else b""


@dataclass(frozen=True)
class MultipartDocument:
    """A multipart document as exact byte spans; ``join()`` of an unmodified document is the input itself."""

    head: bytes
    boundary: bytes
    preamble: bytes
    parts: tuple[MimePart, ...]
    close: bytes
    epilogue: bytes
    eol: bytes = field(default=b"\n")

    def join(self) -> bytes:
        return b"".join(
            [self.head, self.preamble, *(p.delimiter + p.raw for p in self.parts), self.close, self.epilogue]
        )

    def with_parts(self, parts: list[MimePart]) -> MultipartDocument:
        return replace(self, parts=tuple(parts))

    def delimiter_line(self) -> bytes:
        """The delimiter line for a part we insert, in the document's line-ending style."""
        return b"--" + self.boundary + self.eol


def looks_like_mime(raw: bytes) -> bool:
    """cloud-init's test: ``MIME-Version:`` (any case) in the first 4,096 bytes."""
    return b"mime-version:" in raw[:MIME_SNIFF_BYTES].lower()


def header_block_end(raw: bytes) -> int | None:
    """Offset just past the blank line ending the header block at the start of ``raw``; None when there is none."""
    if raw.startswith(b"\r\n"):
        return 2
    if raw.startswith(b"\n"):
        return 1
    match = re.search(rb"\r?\n\r?\n", raw)
    return match.end() if match else None


def parse_headers(raw: bytes) -> Message:
    """Parse the header block at the start of ``raw`` (read-only use of the email package)."""
    end = header_block_end(raw)
    block = raw[:end] if end is not None else raw
    return BytesHeaderParser(policy=compat32).parsebytes(block)


def split_multipart(raw: bytes) -> MultipartDocument:
    """Slice a MIME multipart document into exact byte spans, or raise :class:`MimeError`."""
    end = header_block_end(raw)
    if end is None or end <= 2:
        raise MimeError("user data mentions MIME-Version but has no header block followed by a blank line")
    head = raw[:end]
    if not _HEADER_LINE.match(head):
        raise MimeError("user data mentions MIME-Version but does not start with MIME headers")
    message = parse_headers(head)
    if message.get_content_maintype() != "multipart" or "content-type" not in message:
        raise MimeError("user data is a single-part MIME message; expected Content-Type: multipart/mixed")
    boundary_text = message.get_boundary()
    if not boundary_text:
        raise MimeError("user data is MIME multipart without a boundary parameter")
    try:
        boundary = boundary_text.encode("ascii")
    except UnicodeEncodeError:
        raise MimeError("user data has a non-ASCII MIME boundary") from None
    eol = b"\r\n" if head.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    delimiter = b"--" + boundary
    close_line = delimiter + b"--"

    body = raw[end:]
    # Offsets of delimiter lines: (start, end-of-line, is_close).
    marks: list[tuple[int, int, bool]] = []
    offset = 0
    for line in body.splitlines(keepends=True):
        stripped = line.rstrip(b"\r\n").rstrip(b" \t")  # RFC 2046 allows transport padding after a delimiter
        if stripped == close_line:
            marks.append((offset, offset + len(line), True))
            break
        if stripped == delimiter:
            marks.append((offset, offset + len(line), False))
        offset += len(line)
    if not marks or not marks[-1][2]:
        raise MimeError("user data is MIME multipart without its closing boundary line (truncated?)")
    preamble = body[: marks[0][0]]
    parts: list[MimePart] = []
    for (start, line_end, _), (next_start, _, _) in itertools.pairwise(marks):
        parts.append(MimePart(delimiter=body[start:line_end], raw=body[line_end:next_start]))
    close_start, close_end, _ = marks[-1]
    return MultipartDocument(
        head=head,
        boundary=boundary,
        preamble=preamble,
        parts=tuple(parts),
        close=body[close_start:close_end],
        epilogue=body[close_end:],
        eol=eol,
    )


def build_part(delimiter: bytes, headers: list[tuple[str, str]], body: bytes, eol: bytes = b"\n") -> MimePart:
    """A part we write: headers in the document's line endings, the body as given, one extra line ending."""
    head = b"".join(f"{name}: {value}".encode("ascii") + eol for name, value in headers)
    return MimePart(delimiter=delimiter, raw=head + eol + body + eol)


def new_document(boundary: bytes, parts: list[MimePart]) -> MultipartDocument:
    """A fresh multipart/mixed document (LF line endings) holding ``parts``."""
    head = b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="' + boundary + b'"\n\n'
    return MultipartDocument(
        head=head,
        boundary=boundary,
        preamble=b"",
        parts=tuple(parts),
        close=b"--" + boundary + b"--\n",
        epilogue=b"",
        eol=b"\n",
    )
