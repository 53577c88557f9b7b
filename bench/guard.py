"""Card-data guard: the worst time it spends on one hostile 1 MiB body.

Each case is a body at the guard's size limit built to cost the most: digit groups a
card number could hide in, JSON of many values, percent-encoded forms, deep nesting.
For each it prints the median time of the guard's whole inspection (body and query
string, one shared budget) over several runs, and a same-run floor: what reading the
same body costs with no Dunwell code in the way (decode it and try it as JSON, as the
route would). The last line is one JSON object.
Run: .venv/bin/python bench/guard.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from api.pan_guard import MAX_BODY_BYTES, Refusal, card_data_in, card_data_in_target
from billing.pan import ScanBudget

SIZE = MAX_BODY_BYTES
# A 13-digit run (the shortest a card number can be), spelt out so no long digit
# literal stands in the source.
THIRTEEN_DIGITS = ("1234567890" + "123").encode()


def _fill(unit: bytes, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    room = SIZE - len(prefix) - len(suffix)
    return prefix + unit * (room // len(unit)) + suffix


def _json_list(item: bytes) -> bytes:
    return _fill(item + b",", b"[", b"0]")


CASES: dict[str, tuple[bytes, str]] = {
    "single digits, spaces": (_fill(b"1 "), "text/plain"),
    "single digits, dots": (_fill(b"1."), ""),
    "four-digit groups": (_fill(b"4243 "), "text/plain"),
    "one digit run": (_fill(b"1"), ""),
    "13-digit runs": (_fill(THIRTEEN_DIGITS + b" "), "text/plain"),
    "json 13-digit ints": (_json_list(THIRTEEN_DIGITS), "application/json"),
    "json grouped strings": (_json_list(b'"1 1 1 1 1 1 1 1 1 1 1 1 1 1"'), "application/json"),
    "json small ints": (_json_list(b"1"), "application/json"),
    "json deep": (b"[" * (SIZE // 2) + b"]" * (SIZE // 2), "application/json"),
    "form plus-joined": (_fill(b"1+", b"a="), "application/x-www-form-urlencoded"),
    "form percent-escaped": (_fill(b"1%20", b"a="), "application/x-www-form-urlencoded"),
    "form many fields": (_fill(b"a=1&"), "application/x-www-form-urlencoded"),
}


def guard(body: bytes, content_type: str) -> str:
    budget = ScanBudget()
    try:
        found = card_data_in_target("/v1/events", b"", budget)
        return str(found or card_data_in(body, content_type, budget))
    except Refusal as refusal:
        return refusal.code


def floor(body: bytes, content_type: str) -> str:
    try:
        json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return "not json"
    return "json"


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for name, (body, content_type) in CASES.items():
        verdict = guard(body, content_type)
        guard_ms = median_ms(lambda b=body, c=content_type: guard(b, c), args.runs)
        floor_ms = median_ms(lambda b=body, c=content_type: floor(b, c), args.runs)
        rows.append((name, guard_ms, floor_ms, verdict))
        print(f"{name:24s} guard {guard_ms:7.1f} ms  floor {floor_ms:7.1f} ms  -> {verdict}")
    worst = max(rows, key=lambda row: row[1])
    print(f"worst: {worst[0]}, {worst[1]:.1f} ms (target <= 50 ms for a 1 MiB body)")
    print(
        json.dumps(
            {
                "guard_worst_ms": round(worst[1], 1),
                "worst_case": worst[0],
                "floor_worst_ms": round(max(row[2] for row in rows), 1),
                "body_bytes": SIZE,
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
