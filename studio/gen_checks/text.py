"""Text helpers shared by the generation checks: prompt keys, word counts and template placeholders."""

from __future__ import annotations

import re

_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"\S+")

#: Template slots, by style. Each pattern is documented by what it must and must not match:
#: - double_brace: {{Customer Support Phone Number}}, {{ name }} (Jinja / Mustache / Bitext data sets);
#: - single_brace: {customer_name} (str.format / f-string fields: an identifier only, so "{a, b}" is no slot);
#: - dollar_brace: ${order_id} (shell / JS template literals);
#: - square_bracket: [NAME], [ORDER_ID], [Customer Support Phone Number] (ALL CAPS or Title Case of two words or
#:   more), [your name], [insert date] (starting with your/insert/enter/add); never a Markdown link "[text](url)",
#:   a footnote "[1]" or a lowercase aside "[sic]";
#: - angle_bracket: <name>, <customer_name>, <Your Name>, <ORDER ID>; never an HTML tag (<br>, <p>, <div ...>),
#:   a closing tag, an e-mail or URL in brackets (<a@b.com>, <https://...>).
PLACEHOLDER_PATTERNS: dict[str, re.Pattern[str]] = {
    "double_brace": re.compile(r"\{\{[^{}\n]{1,100}\}\}"),
    "single_brace": re.compile(r"(?<![{$])\{[A-Za-z_][A-Za-z0-9_]{0,60}\}(?!\})"),
    "dollar_brace": re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_.]{0,60}\}"),
    "square_bracket": re.compile(
        r"\[(?:[A-Z][A-Z0-9_]+(?:[ _-][A-Z0-9_]+)*"  # [NAME], [ORDER_ID], [ORDER ID]
        r"|[A-Z][a-z0-9]+(?: (?:[A-Z][a-z0-9]*|of|or|and|the|to|for))*(?: [A-Z][a-z0-9]+)"  # [Customer Name]
        r"|(?i:your|insert|enter|add)\b[^\[\]\n]{1,60})\](?!\()"),
    "angle_bracket": re.compile(
        r"<(?!(?:a|abbr|b|blockquote|br|code|dd|div|dl|dt|em|h[1-6]|hr|i|img|li|ol|p|pre|s|small|span|strong|sub|"
        r"sup|table|tbody|td|th|thead|tr|u|ul)\b[\s/>])"
        r"([A-Za-z][A-Za-z0-9_]*(?:[ _-][A-Za-z0-9_]+){0,5})>"),
}


def normalise_prompt(text: str) -> str:
    """The exact-duplicate key: lower case, every run of non-alphanumeric characters (whitespace, punctuation,
    underscores) made one space, stripped. "Cancel  order #12?" and "cancel order 12" share a key."""
    return _NON_WORD.sub(" ", str(text).lower()).strip()


def word_count(text: str) -> int:
    """Whitespace-separated words (a {{Slot Name}} counts as its words)."""
    return len(_WORD.findall(str(text)))


def find_placeholders(text: str, *, allowed: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, str]]:
    """(style, placeholder text) of every unfilled template slot, in order of appearance; a slot whose text is
    in `allowed` (e.g. "{{Website Name}}", the deploying company's slots of a template data set) is skipped.
    Styles: the keys of PLACEHOLDER_PATTERNS. Overlaps are reported once (the brace styles win)."""
    text = str(text)
    found: list[tuple[int, int, str, str]] = []
    taken = bytearray(len(text) + 1)
    for style, pattern in PLACEHOLDER_PATTERNS.items():
        for m in pattern.finditer(text):
            if any(taken[m.start():m.end()]):
                continue
            taken[m.start():m.end()] = b"\x01" * (m.end() - m.start())
            if m.group(0) not in allowed:
                found.append((m.start(), m.end(), style, m.group(0)))
    return [(style, slot) for _, _, style, slot in sorted(found)]


def mask_placeholders(text: str) -> str:
    """The text with every named template slot replaced by spaces of the same length (offsets are kept), so the
    personal-data patterns never read "{{Customer Support Phone Number}}" as a phone number. A slot without a
    letter is a value someone put in braces ("{{113542617735902}}"), not a name: it stays, and is scanned."""
    text = str(text)
    chars = list(text)
    for pattern in PLACEHOLDER_PATTERNS.values():
        for m in pattern.finditer(text):
            if any(c.isalpha() for c in m.group(0)):
                chars[m.start():m.end()] = " " * (m.end() - m.start())
    return "".join(chars)
