"""What the test session does differently under mutation testing (``DUNWELL_MUTATION=1``,
set by ``bench/mutation.py``).

- Example budgets: every mutant reruns the tests that reach it, so a property test
  draws a tenth of its examples (at least ten); the hypothesis profile ``mutation``
  (``tests/conftest.py``) also derandomizes the draw, so a verdict does not depend on
  luck.
- Caches: the pure core memoises its data loaders (the network-rule table, the policy
  catalog, the rate table). Under mutation they are emptied before every test, so each
  test that needs the data runs the loader: mutmut then links the loader's mutants to
  every such test, not only to the first one that happened to fill the cache, and a
  mutated loader is really run in each.
"""

from __future__ import annotations

import os
import sys

MUTATION = os.environ.get("DUNWELL_MUTATION") == "1"
# The pure packages whose module caches are emptied between tests.
CACHED_PACKAGES = ("billing", "tax")


def examples(normal: int) -> int:
    """The example budget: ``normal``, or a tenth of it (at least 10) under mutation."""
    return max(10, normal // 10) if MUTATION else normal


def clear_caches() -> int:
    """Empty every ``functools.cache`` of the pure packages' loaded modules and the rate
    table's module global; returns how many caches were emptied."""
    cleared = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in CACHED_PACKAGES:
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and hasattr(value, "__wrapped__"):
                value.cache_clear()
                cleared += 1
        if name == "tax.rates":
            module._default = None  # type: ignore[attr-defined]
            cleared += 1
    return cleared
