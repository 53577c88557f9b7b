"""Guards that keep card numbers (PANs) and security codes out of Dunwell.

Only gateway tokens belong on the server. These checks find what looks like a card number
in free text (request bodies, query strings, log lines) and card-data field names in JSON,
so a request carrying them can be refused unlogged and a log line can be redacted.

A PAN-like value is a run of 13 to 19 digits that passes the Luhn check (ISO/IEC 7812-1),
written either contiguously or in groups joined by one kind of separator, as card numbers
are commonly typed (groups of four, or 4-6-5 digits): one or two spaces, a tab, a dash,
a dot or a slash. Text is read after NFKC normalisation, so full-width digits and
separators count, and any Unicode decimal digit reads as its ASCII digit. A contiguous
run of 20 or more digits is an identifier, not a card number, and is not flagged.

Scanning is linear in the text: regular expressions find the digit chains, and the
Luhn windows inside a chain are paid for from a ``ScanBudget`` before they are built,
so a hostile text (a megabyte of ``"1 1 1 …"``) costs a bounded amount of work and ends
in ``ScanBudgetExceeded`` instead of seconds of CPU.
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any

REDACTED = "[REDACTED]"

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19

# Steps one request may spend looking for card numbers: a JSON value visited, a digit
# Luhn-checked (a digit inside a chain of groups counts once per group that may start a
# number). An ordinary body spends a few dozen to a few hundred; 50,000 is about ten
# milliseconds of work.
DEFAULT_SCAN_BUDGET = 50_000
# Deepest JSON nesting walked; deeper documents are refused, never recursed into.
MAX_JSON_DEPTH = 64

# How one typed card number joins its groups; one number uses one of them throughout.
_SEPARATORS = frozenset({" ", "  ", "\t", "-", ".", "/"})
# Maximal runs of digits and separator characters that start with a digit: one simple
# character class, so matching is linear and fast even on a megabyte of "1 1 1 ...".
_CHAIN = re.compile(rf"[0-9][0-9 \t./-]{{{MIN_PAN_DIGITS - 1},}}")
_GROUP = re.compile(r"[0-9]+")
_SEPARATOR_CHARS = " \t./-"
_DIGIT_BYTES = b"0123456789"

# Keys (normalised: lower case, letters and digits only) that name card data outright.
_CARD_DATA_KEYS = frozenset(
    {
        "cardnumber",
        "cardno",
        "cardnum",
        "ccnumber",
        "ccnum",
        "creditcardnumber",
        "primaryaccountnumber",
        "pan",
        "cvc",
        "cvc2",
        "cvv",
        "cvv2",
        "cvn",
        "cvn2",
        "ccv",
        "cardcvc",
        "cardcvc2",
        "cardcvv",
        "cardcvv2",
        "cardcvn",
        "cardcvn2",
        "cvccode",
        "cvvcode",
        "securitycode",
        "cardsecuritycode",
        "cardverificationcode",
        "cardverificationvalue",
    }
)
# "number" is card data only inside a card object.
_CARD_OBJECT_HINTS = frozenset(
    {"expmonth", "expyear", "expiry", "expirydate", "cvc", "cvv", "cvn", "cvc2", "cvv2"}
)

# The value after a cvc-like key in free text: cvc=123, "cvv": "123", security_code: 123.
_CVC_VALUE = re.compile(
    r"""(?ix)
    \b(cvc2?|cvv2?|cvn2?|card[_-]?cv[cvn]2?|security[_-]?code)\b
    (["']?\s*[:=]\s*["']?)
    ([^\s,;&"'}\]]+)
    """
)


class ScanBudgetExceeded(Exception):
    """The text holds more digit groups than a request may make Dunwell look through."""


class JsonTooDeep(Exception):
    """A JSON document nested deeper than ``MAX_JSON_DEPTH``."""


class ScanBudget:
    """Group steps left for one request's scans; shared by every scan of that request."""

    __slots__ = ("remaining",)

    def __init__(self, steps: int = DEFAULT_SCAN_BUDGET) -> None:
        self.remaining = steps

    def spend(self, steps: int) -> None:
        self.remaining -= steps
        if self.remaining < 0:
            raise ScanBudgetExceeded


class _Unlimited(ScanBudget):
    def spend(self, steps: int) -> None:
        return None


def _unicode_digits_and_separators() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(128, sys.maxunicode + 1):
        char = chr(code)
        if char.isdecimal():
            table[code] = str(unicodedata.decimal(char))
    for code in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE58, 0xFE63):
        table[code] = "-"
    for code in (0x00A0, 0x2007, 0x202F, 0x3000):
        table[code] = " "
    return table


_TRANSLATE: dict[int, str] | None = None


def normalise(text: str) -> str:
    """The text as the scan reads it: NFKC, Unicode digits and dashes as ASCII."""
    if text.isascii():
        return text
    global _TRANSLATE
    if _TRANSLATE is None:
        _TRANSLATE = _unicode_digits_and_separators()
    return unicodedata.normalize("NFKC", text).translate(_TRANSLATE)


_DOUBLED = {str(digit): (2 * digit) % 9 if digit != 9 else 9 for digit in range(10)}


def luhn_valid(digits: str) -> bool:
    """The Luhn check of ISO/IEC 7812-1 over an ASCII digit string."""
    plain = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_DOUBLED.__getitem__, digits[-2::-2]))
    return (plain + doubled) % 10 == 0


def _pan_spans(text: str, budget: ScanBudget) -> Iterator[tuple[int, int]]:
    """Spans of text that read as a Luhn-valid 13-19 digit card number."""
    for chain in _CHAIN.finditer(text):
        chain_text = chain.group().rstrip(_SEPARATOR_CHARS)
        if len(chain_text) < MIN_PAN_DIGITS:
            continue
        if chain_text.isdigit():
            budget.spend(min(len(chain_text), MAX_PAN_DIGITS + 1))
            if len(chain_text) <= MAX_PAN_DIGITS and luhn_valid(chain_text):
                yield chain.start(), chain.start() + len(chain_text)
            continue
        # ASCII by construction: count the separator characters in C.
        separators = len(chain_text.encode("ascii").translate(None, _DIGIT_BYTES))
        if len(chain_text) - separators < MIN_PAN_DIGITS:
            continue
        # Each group may start a number that spans at most MAX_PAN_DIGITS groups: pay
        # for that walk before building anything.
        budget.spend((len(chain_text) - separators) * min(separators + 1, MAX_PAN_DIGITS))
        groups = [(m.start(), m.end()) for m in _GROUP.finditer(chain_text)]
        base = chain.start()
        start = 0
        while start < len(groups):
            found = _pan_from(chain_text, groups, start)
            if found is None:
                start += 1
                continue
            yield base + groups[start][0], base + groups[found][1]
            start = found + 1


def _pan_from(chain: str, groups: list[tuple[int, int]], start: int) -> int | None:
    """Index of the last group of the longest PAN that begins at group ``start``."""
    digits = ""
    separator: str | None = None
    longest: int | None = None
    for end in range(start, len(groups)):
        if end > start:
            between = chain[groups[end - 1][1] : groups[end][0]]
            # One card number is typed with one kind of separator.
            if between not in _SEPARATORS:
                break
            if separator is None:
                separator = between
            elif between != separator:
                break
        digits += chain[groups[end][0] : groups[end][1]]
        if len(digits) > MAX_PAN_DIGITS:
            break
        if len(digits) >= MIN_PAN_DIGITS and luhn_valid(digits):
            longest = end  # keep going: redaction must cover the whole number
    return longest


def find_pan_like(text: str, budget: ScanBudget | None = None) -> bool:
    """Whether the text contains something that reads as a card number.

    With a budget, a text that would cost more than it holds raises
    ``ScanBudgetExceeded``; without one the scan is unbounded (log lines).
    """
    spans = _pan_spans(normalise(text), budget if budget is not None else _Unlimited(0))
    return next(spans, None) is not None


def redact(text: str) -> str:
    """The text with card numbers and the values of cvc-like keys replaced."""
    text = normalise(text)
    spans = list(_pan_spans(text, _Unlimited(0)))
    if spans:
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts.append(text[last:start])
            parts.append(REDACTED)
            last = end
        parts.append(text[last:])
        text = "".join(parts)
    return _CVC_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def _normalise_key(key: str) -> str:
    return "".join(char for char in normalise(key).lower() if char.isalnum())


def card_data_in_value(obj: Any, budget: ScanBudget) -> str | None:
    """What card data a parsed JSON value carries (``card_field``/``card_number``), or None.

    Keys are read as field names and as text; strings as text; integers as digit runs.
    Floats are not card numbers (``5.6957321794073064e+16`` is a measurement, not a PAN).
    Raises ``JsonTooDeep`` and ``ScanBudgetExceeded``.
    """
    paths, texts = _walk(obj, budget)
    if paths:
        return "card_field"
    # One scan over every text long enough: a newline never joins two digit chains.
    if texts and find_pan_like("\n".join(texts), budget):
        return "card_number"
    return None


def suspicious_field_names(obj: Any) -> list[str]:
    """Paths of keys in a JSON value that name card data (e.g. ``card.number``, ``cvc``).

    Raises ``JsonTooDeep`` for a value nested deeper than ``MAX_JSON_DEPTH``.
    """
    return _walk(obj, _Unlimited(0))[0]


def _walk(obj: Any, budget: ScanBudget) -> tuple[list[str], list[str]]:
    """Suspicious key paths, and the texts long enough to hold a card number, iteratively."""
    paths: list[str] = []
    texts: list[str] = []
    stack: list[tuple[Any, str, str | None, int]] = [(obj, "", None, 0)]
    while stack:
        value, path, parent_key, depth = stack.pop()
        if isinstance(value, str):
            if len(value) >= MIN_PAN_DIGITS:
                texts.append(value)
        elif isinstance(value, dict):
            if depth >= MAX_JSON_DEPTH:
                raise JsonTooDeep
            budget.spend(len(value))
            names = {key: _normalise_key(str(key)) for key in value}
            in_card = (
                parent_key is not None and "card" in parent_key
            ) or not _CARD_OBJECT_HINTS.isdisjoint(names.values())
            children = []
            for key, item in value.items():
                name = names[key]
                child = f"{path}.{key}" if path else str(key)
                if name in _CARD_DATA_KEYS or (in_card and name == "number"):
                    paths.append(child)
                if len(str(key)) >= MIN_PAN_DIGITS:
                    texts.append(str(key))
                children.append((item, child, name, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise JsonTooDeep
            budget.spend(len(value))
            nested = []
            for index, item in enumerate(value):
                if isinstance(item, str):
                    if len(item) >= MIN_PAN_DIGITS:
                        texts.append(item)
                elif isinstance(item, dict | list | tuple | int):
                    nested.append((item, f"{path}[{index}]", parent_key, depth + 1))
            stack.extend(reversed(nested))
        elif isinstance(value, int) and not isinstance(value, bool):
            if value >= 10 ** (MIN_PAN_DIGITS - 1) or value <= -(10 ** (MIN_PAN_DIGITS - 1)):
                texts.append(str(value))
    return paths, texts


class RedactingFilter(logging.Filter):
    """Replaces card numbers and cvc-like values in a log record before any handler sees it.

    The message is rendered once (msg % args) and redacted, so a card number passed as an
    argument, of any type, cannot slip past; exception and stack text are redacted too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: redact the parts instead
            record.msg = redact(str(record.msg))
            record.args = _redact_args(record.args)
        else:
            redacted = redact(message)
            if redacted != message:
                record.msg = redacted
                record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(redact(str(arg)) for arg in args)
    if isinstance(args, dict):
        return {key: redact(str(value)) for key, value in args.items()}
    return args
