"""Personal data in prompts and responses: e-mail addresses, phone numbers, payment cards, IBANs, account numbers.

Documented patterns, not a maintained detector. Checked (PyPI, offline machine): presidio-analyzer 2.2 installs
(with spaCy, ~650 MB with scrubadub), but `AnalyzerEngine()` tries to download a spaCy model at start-up and
fails, and its e-mail recognizer fetches the public-suffix list over the network (tldextract) before falling
back; only its pattern recognizers run offline. scrubadub 2.0 runs offline but pins textblob 0.15 and found neither the
card nor the IBAN of a test sentence. Neither is a dependency of the studio, so the rules below are written out,
each with a validity test where the format has one (Luhn for cards, ISO 7064 mod-97 and the registry length for
IBANs). Named template slots ({{Customer Support Phone Number}}, [Customer Name], <name>) are masked first: they are
the placeholders of a template data set, not personal data.

- email: local@domain.tld per the HTML living standard's "valid e-mail address" (ASCII, a dot in the domain,
  a TLD of 2-24 letters). Role mailboxes (RFC 2142: info@, sales@, support@, ...; and help@, contact@, noreply@)
  name a function, not a person, and are skipped unless `skip_role_emails=False`.
- payment_card: 13-19 digits, optionally grouped by single spaces or hyphens, starting with an issuer prefix of a
  major network (ISO/IEC 7812 ranges of Visa 4; Mastercard 51-55, 2221-2720; Amex 34, 37; Discover 6011, 644-649,
  65; Diners 300-305, 36, 38-39; JCB 3528-3589; UnionPay 62; Maestro 50, 56-58) and passing the Luhn check.
  A Luhn-invalid or prefix-less number (an order id) is not a card.
- iban: two letters, two check digits and 11-30 letters/digits (print groups of four allowed), of the length the
  SWIFT IBAN registry gives for that country, with ISO 7064 MOD 97-10 remainder 1.
- account_number: 6-17 digits right after "account/acct/a/c/routing number|no|#" (bank account and routing
  numbers have no checksum to test, so the words in front are required).
- phone: 7-15 digits (the E.164 maximum) written as a phone number: either "+country ..." with 8-15 digits, or
  the North-American (xxx) xxx-xxxx shape, or a separated number at most 20 characters after phone / call / tel
  / mobile / cell / whatsapp / fax / sms (not "number": "order number 123-4567" is an order). Dates
  (2024-01-31, 31.01.2024) and bare digit runs (order ids) are not phone numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.gen_checks.base import (PII_KINDS, CheckResult, GenerationCheck, GenerationContext, issue_frame,
                                    register_generation_check)
from studio.gen_checks.text import mask_placeholders

#: How serious a find is, as the issue score (higher = worse): payment data first.
SEVERITY: dict[str, float] = {"payment_card": 1.0, "iban": 1.0, "account_number": 0.9, "email": 0.9, "phone": 0.8}

#: Documented patterns, kind -> what it matches (shown on the report page next to the counts).
PII_PATTERNS: dict[str, str] = {
    "email": "local@domain.tld (HTML standard's valid e-mail address); role mailboxes such as support@ skipped",
    "phone": "+country number (8-15 digits), (xxx) xxx-xxxx, or a separated 7-15 digit number after "
             "phone/call/tel/mobile",
    "payment_card": "13-19 digits with a major network's issuer prefix that pass the Luhn check",
    "iban": "country code, check digits, registry length for the country, ISO 7064 mod-97 = 1",
    "account_number": "6-17 digits after 'account/acct/routing number|no|#'",
}

_EMAIL = re.compile(r"(?<![\w.+%-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@"
                    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")
_ROLE_MAILBOXES = frozenset({
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster", "hostmaster", "usenet",
    "news", "webmaster", "www", "uucp", "ftp",  # RFC 2142
    "help", "contact", "hello", "noreply", "no-reply", "billing", "service", "customerservice", "care", "team",
})
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_ACCOUNT = re.compile(r"(?i)\b(?:bank\s+)?(?:account|acct|a/c|routing)\s*(?:number|no\.?|num|#)\s*(?:is\s*|:\s*|#\s*)?"
                      r"(\d(?:[ -]?\d){5,16})(?![\d-])")
_PHONE = re.compile(r"(?<![\w+.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{1,5}){0,5}(?![\w-])")
_NANP = re.compile(r"^(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}$")
_DATE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")
_PHONE_WORDS = re.compile(r"(?i)\b(?:phone|call|tel|telephone|mobile|cell|whatsapp|fax|sms|text me|reach me)\b"
                          r"[^\n]{0,20}$")

#: Characters of a valid IBAN per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


@dataclass(frozen=True)
class PersonalData:
    """One find: kind (PII_KINDS), [start, end) character offsets in the text, the matched value, and for a
    card the network."""

    kind: str
    start: int
    end: int
    value: str
    network: str = ""

    def masked(self) -> str:
        """The value with all but its edges hidden, for a report line (never the full number or address)."""
        if self.kind == "email":
            local, _, domain = self.value.partition("@")
            return f"{local[:1]}***@{domain}"
        digits = re.sub(r"\D", "", self.value) if self.kind != "iban" else self.value.replace(" ", "")
        return f"{digits[:2]}…{digits[-4:]}" if len(digits) > 6 else "…" + digits[-2:]


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a digit string: true for every issued payment card number."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network(digits: str) -> str:
    """The network whose issuer prefix and length fit the digits, or "" (then it is no card number)."""
    n = len(digits)
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "Visa"
    if n == 16 and (51 <= p2 <= 55 or 2221 <= p4 <= 2720):
        return "Mastercard"
    if n == 15 and p2 in (34, 37):
        return "American Express"
    if 16 <= n <= 19 and (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65):
        return "Discover"
    if 14 <= n <= 19 and (300 <= p3 <= 305 or p2 in (36, 38, 39)):
        return "Diners Club"
    if 16 <= n <= 19 and 3528 <= p4 <= 3589:
        return "JCB"
    if 16 <= n <= 19 and p2 == 62:
        return "UnionPay"
    if 12 <= n <= 19 and (p2 == 50 or 56 <= p2 <= 58):
        return "Maestro"
    return ""


def iban_valid(candidate: str) -> bool:
    """Registry length for the country and ISO 7064 MOD 97-10 remainder 1 (spaces ignored, any case)."""
    iban = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _blank(chars: list[str], start: int, end: int) -> None:
    chars[start:end] = " " * (end - start)


def find_personal_data(text: str, *, kinds: tuple[str, ...] | list[str] = PII_KINDS,
                       skip_role_emails: bool = True) -> list[PersonalData]:
    """Every personal-data find in `text`, in order of position (see the module docstring for each rule).

    Template slots are masked first. Kinds are matched most specific first (cards, IBANs, account numbers,
    e-mails, phones) and a matched span is blanked, so one number is reported once.
    """
    unknown = [k for k in kinds if k not in PII_KINDS]
    if unknown:
        raise ValueError(f"unknown personal-data kinds {unknown}; expected some of {list(PII_KINDS)}")
    work = list(mask_placeholders(str(text)))
    found: list[PersonalData] = []

    def scan(kind: str, pattern: re.Pattern[str], accept) -> None:
        current = "".join(work)
        for m in pattern.finditer(current):
            verdict = accept(m, current)
            if verdict is None:
                continue
            start, end = m.span(1) if pattern is _ACCOUNT else m.span()
            found.append(PersonalData(kind, start, end, str(text)[start:end], verdict))
            _blank(work, start, end)

    def card(m: re.Match[str], _: str) -> str | None:
        raw = m.group(0)
        if len(set(re.findall(r"[ -]", raw))) > 1:  # mixed separators: two numbers side by side, not one card
            return None
        digits = re.sub(r"\D", "", raw)
        network = card_network(digits)
        return network if network and luhn_valid(digits) else None

    def iban(m: re.Match[str], _: str) -> str | None:
        return "" if iban_valid(m.group(0)) else None

    def account(m: re.Match[str], _: str) -> str | None:
        return ""

    def email(m: re.Match[str], _: str) -> str | None:
        if skip_role_emails and m.group(1).lower() in _ROLE_MAILBOXES:
            return None
        return ""

    def phone(m: re.Match[str], current: str) -> str | None:
        raw = m.group(0).strip()
        digits = re.sub(r"\D", "", raw)
        if not 7 <= len(digits) <= 15 or _DATE.match(raw):
            return None
        if raw.startswith("+"):
            return "" if len(digits) >= 8 else None
        if _NANP.match(raw):
            return ""
        separated = bool(re.search(r"[\s.()-]", raw))
        return "" if separated and _PHONE_WORDS.search(current[:m.start()]) else None

    rules = {"payment_card": (_CARD, card), "iban": (_IBAN, iban), "account_number": (_ACCOUNT, account),
             "email": (_EMAIL, email), "phone": (_PHONE, phone)}
    for kind in ("payment_card", "iban", "account_number", "email", "phone"):
        if kind in kinds:
            pattern, accept = rules[kind]
            scan(kind, pattern, accept)
    return sorted(found, key=lambda f: f.start)


@register_generation_check
class PersonalDataCheck(GenerationCheck):
    name = "personal_data"
    description = ("E-mail addresses, phone numbers, payment cards (Luhn-checked), IBANs (mod-97) and account "
                   "numbers in prompts or responses; template slots such as {{Phone Number}} are not counted.")
    needs_embeddings = False

    def run(self, ctx: GenerationContext) -> CheckResult:
        cfg = ctx.config
        kinds = tuple(cfg.pii_kinds)
        rows: list[dict] = []
        texts = [(ctx.tasks, "prompt", None), (ctx.responses, "response", "annotator")]
        for frame, field, who in texts:
            for i, text in enumerate(frame[field]):
                found = find_personal_data(text, kinds=kinds, skip_role_emails=cfg.pii_skip_role_emails)
                if not found:
                    continue
                names = [f"{f.kind.replace('_', ' ')}{f' ({f.network})' if f.network else ''} {f.masked()}"
                         for f in found]
                rows.append({"task_id": frame["task_id"].iat[i], "check": self.name, "field": field,
                             "annotator": frame[who].iat[i] if who else "",
                             "score": max(SEVERITY[f.kind] for f in found),
                             "detail": f"{field} contains " + "; ".join(names[:5])
                                       + (f" and {len(names) - 5} more" if len(names) > 5 else "")})
        return CheckResult(issue_frame(rows), {"kinds": list(kinds), "skip_role_emails": cfg.pii_skip_role_emails,
                                               "patterns": {k: PII_PATTERNS[k] for k in kinds}})
