"""Example budgets of the property tests.

Under mutation testing (``DUNWELL_MUTATION=1``, set by ``bench/mutation.py``) every
mutant reruns the tests that reach it, so a property test draws a tenth of its
examples (at least ten); the hypothesis profile ``mutation`` (``tests/conftest.py``)
also derandomizes the draw, so a mutant's verdict does not depend on luck.
"""

from __future__ import annotations

import os

MUTATION = os.environ.get("DUNWELL_MUTATION") == "1"


def examples(normal: int) -> int:
    """The example budget: ``normal``, or a tenth of it (at least 10) under mutation."""
    return max(10, normal // 10) if MUTATION else normal
