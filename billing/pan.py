"""Guards that keep card numbers (PANs) and security codes out of Dunwell.

Only gateway tokens belong on the server. These checks find what looks like a card number
in free text (request bodies, log lines) and card-data field names in JSON, so a request
carrying them can be refused unlogged and a log line can be redacted.

A PAN-like value is a run of 13 to 19 digits that passes the Luhn check (ISO/IEC 7812-1),
written either contiguously or in groups separated by single spaces or single dashes, as
card numbers are commonly typed (groups of four, or 4-6-5 digits). A contiguous
run of 20 or more digits is an identifier, not a card number, and is not flagged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

REDACTED = "[REDACTED]"

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19

# Maximal chains of ASCII digit groups joined by one space or one dash. Each repetition
# must consume a separator, so matching is linear.
_CHAIN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_GROUP = re.compile(r"[0-9]+")

# Keys (normalised: lower case, letters and digits only) that name card data outright.
_CARD_DATA_KEYS = frozenset(
    {
        "cardnumber",
        "cardno",
        "ccnumber",
        "creditcardnumber",
        "primaryaccountnumber",
        "pan",
        "cvc",
        "cvc2",
        "cvv",
        "cvv2",
        "cardcvc",
        "cardcvv",
        "securitycode",
        "cardsecuritycode",
    }
)
# "number" is card data only inside a card object.
_CARD_OBJECT_HINTS = frozenset({"expmonth", "expyear", "expiry", "expirydate", "cvc", "cvv"})

# The value after a cvc-like key in free text: cvc=123, "cvv": "123", security_code: 123.
_CVC_VALUE = re.compile(
    r"""(?ix)
    \b(cvc2?|cvv2?|card[_-]?cvc|security[_-]?code)\b
    (["']?\s*[:=]\s*["']?)
    ([^\s,;&"'}\]]+)
    """
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _pan_spans(text: str) -> Iterator[tuple[int, int]]:
    """Spans of text that read as a Luhn-valid 13-19 digit card number."""
    for chain in _CHAIN.finditer(text):
        chain_text = chain.group()
        if len(chain_text) < MIN_PAN_DIGITS:
            continue
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
            between = chain[groups[end - 1][1]]
            # One card number is typed with one kind of separator.
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


def find_pan_like(text: str) -> bool:
    """Whether the text contains something that reads as a card number."""
    return next(_pan_spans(text), None) is not None


def redact(text: str) -> str:
    """The text with card numbers and the values of cvc-like keys replaced."""
    spans = list(_pan_spans(text))
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
    return "".join(char for char in key.lower() if char.isalnum())


def suspicious_field_names(obj: Any) -> list[str]:
    """Paths of keys in a JSON value that name card data (e.g. ``card.number``, ``cvc``)."""
    found: list[str] = []
    _walk(obj, "", None, found)
    return found


def _walk(obj: Any, path: str, parent_key: str | None, found: list[str]) -> None:
    if isinstance(obj, dict):
        keys = {_normalise_key(str(k)) for k in obj}
        in_card = (parent_key is not None and "card" in parent_key) or bool(
            keys & _CARD_OBJECT_HINTS
        )
        for key, value in obj.items():
            name = _normalise_key(str(key))
            child = f"{path}.{key}" if path else str(key)
            if name in _CARD_DATA_KEYS or (in_card and name == "number"):
                found.append(child)
            _walk(value, child, name, found)
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            _walk(value, f"{path}[{index}]", parent_key, found)


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
