"""A message's own words: e-mail / news headers, quoted replies and signatures stripped.

Two replies in one thread share their header lines ("From:", "Subject: Re: ...", "Organization:") and often a
quoted paragraph; compared whole, or through an encoder window that sees only their first 128 tokens, they look
the same although what each person wrote differs. The near-duplicate check compares what is left here.

Direction: str in, str out. No I/O.
"""

from __future__ import annotations

import re

#: Header names (lower case) that mark a line "Name: value" as a mail / news header.
HEADER_NAMES = frozenset({
    "from", "subject", "re", "organization", "organisation", "lines", "date", "to", "cc", "bcc", "newsgroups",
    "message-id", "reply-to", "sender", "keywords", "summary", "distribution", "nntp-posting-host", "references",
    "followup-to", "path", "expires", "approved", "originator", "in-reply-to", "return-path", "received",
    "mime-version", "content-type", "content-transfer-encoding", "sent", "importance", "article-i.d.", "fwd",
    "fw", "xref", "x-newsreader", "x-mailer", "x-sender",
})

_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z0-9.\-]{0,40}):(\s|$)")
_QUOTE = re.compile(r"^\s*(>|\|>|:>|\|\s)")
_ATTRIBUTION = re.compile(r"(\b(writes|wrote|says|said)\s*:\s*$)|(^\s*in article\s*<)", re.IGNORECASE)
_FORWARD = re.compile(r"^\s*-{2,}\s*(original message|forwarded message|begin forwarded)", re.IGNORECASE)
_SIGNATURE = re.compile(r"^\s*--\s*$")


def _is_header(line: str) -> bool:
    match = _HEADER.match(line)
    if match is None:
        return False
    name = match.group(1).lower()
    return name in HEADER_NAMES or name.startswith("x-")


def strip_boilerplate(text: str) -> str:
    """The text without header lines ("From: ...", "Subject: Re: ...", any "X-...: ..."), quoted lines (starting
    with ">", "|>", ":>"), attribution lines ("... writes:", "In article <...>"), forward markers, and everything
    after a signature separator ("--" alone on a line). Lines are kept otherwise, in order. A text with none of
    these comes back unchanged; one that is nothing but these comes back empty."""
    text = str(text)
    lines = text.splitlines()
    kept: list[str] = []
    in_header = False
    for line in lines:
        if _SIGNATURE.match(line):
            break
        if _is_header(line):
            in_header = True
            continue
        if in_header and line[:1] in (" ", "\t") and line.strip():
            continue  # a folded header line continues the one above
        in_header = False
        if _QUOTE.match(line) or _ATTRIBUTION.search(line) or _FORWARD.match(line):
            continue
        kept.append(line)
    if len(kept) == len(lines):
        return text
    return "\n".join(kept).strip()
