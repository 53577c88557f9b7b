"""The install: lock files that match pyproject.toml, and a production install that carries
no local-stack package and still imports and serves."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dunwell.local_stack import LOCAL_MODULES

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) for each pinned requirement of a lock file."""
    found: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            current = None
    return found


def requirements(*groups: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]] if "runtime" in groups else []
    for group in groups:
        if group != "runtime":
            reqs += [Requirement(r) for r in project["optional-dependencies"][group]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def unpinned(reqs: list[Requirement], locked: dict[str, tuple[str, int]]) -> list[str]:
    problems = []
    for req in reqs:
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{req.name}=={locked[name][0]} does not satisfy {req.specifier}")
    return problems


def test_the_runtime_lock_pins_every_runtime_requirement_with_a_matching_version() -> None:
    assert unpinned(requirements("runtime"), pins(RUNTIME_LOCK)) == [], "run `make lock`"


def test_the_dev_lock_pins_every_requirement_of_make_install() -> None:
    problems = unpinned(requirements("runtime", "dev", "local"), pins(DEV_LOCK))
    assert problems == [], "run `make lock`"


def test_a_requirement_missing_from_the_lock_is_reported() -> None:
    locked = pins(RUNTIME_LOCK)
    reqs = [Requirement("no-such-package-dunwell>=1"), Requirement("fastapi<0.1")]
    problems = unpinned(reqs, locked)
    assert problems[0] == "no-such-package-dunwell is not in the lock"
    assert problems[1].startswith("fastapi==") and "does not satisfy <0.1" in problems[1]


def test_every_pin_carries_hashes_and_both_locks_agree() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert runtime and dev
    assert [name for name, (_, hashes) in {**runtime, **dev}.items() if hashes == 0] == []
    assert {n: v for n, (v, _) in runtime.items() if dev.get(n, (v, 0))[0] != v} == {}
    assert set(runtime) <= set(dev)


def test_no_dev_or_local_stack_package_is_in_the_production_lock() -> None:
    runtime = pins(RUNTIME_LOCK)
    for group in ("dev", "local"):
        for req in requirements(group):
            assert canonicalize_name(req.name) not in runtime, req.name


def test_make_install_and_the_dockerfile_install_from_the_hashed_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements/dev.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/runtime.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile


# Run in a fresh interpreter in which the local extra's packages cannot be imported, as
# in a production install (the Dockerfile's).
PRODUCTION_PRELUDE = textwrap.dedent(
    """
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # import fails, importlib.util.find_spec answers None
    """
)
BLOCKED = [*LOCAL_MODULES, "aiohttp", "pytest", "hypothesis", "playwright"]
# Modules that are part of the local stack by design, started only by `dunwell dev`.
LOCAL_ONLY = {"dunwell.settlement_sim"}


def run_as_production(body: str) -> subprocess.CompletedProcess[str]:
    code = PRODUCTION_PRELUDE.format(blocked=BLOCKED) + textwrap.dedent(body)
    with tempfile.TemporaryDirectory() as home:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "DUNWELL_ENV": "test", "HOME": home},
        )


def test_a_production_install_imports_every_module_and_builds_the_app() -> None:
    result = run_as_production(
        f"""
        import importlib, pkgutil
        failed = []
        for root in ("api", "workflows", "activities", "ledger", "stores", "billing", "tax",
                     "dunwell"):
            package = importlib.import_module(root)
            for info in pkgutil.walk_packages(package.__path__, root + "."):
                if info.name in {sorted(LOCAL_ONLY)!r}:
                    continue
                try:
                    importlib.import_module(info.name)
                except Exception as err:
                    failed.append(f"{{info.name}}: {{err!r}}")
        import worker
        from api.app import create_app
        create_app()
        try:
            import localstripe
        except ModuleNotFoundError:
            print("localstripe blocked")
        print("FAILED", failed)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "localstripe blocked" in result.stdout
    assert "FAILED []" in result.stdout, result.stdout


def test_dunwell_dev_in_a_production_install_says_what_is_missing() -> None:
    result = run_as_production(
        """
        from typer.testing import CliRunner
        from dunwell.cli import app
        for args in (["dev"], ["smtp-sink", "--port", "0"], ["localstripe", "--port", "0"]):
            outcome = CliRunner().invoke(app, args)
            print(args[0], outcome.exit_code, repr(outcome.output))
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["dev"].startswith("2 ")
    assert "localstripe, aiosmtpd not installed (a production install)" in lines["dev"]
    assert "make install" in lines["dev"]
    assert lines["smtp-sink"].startswith("2 ") and "aiosmtpd not installed" in lines["smtp-sink"]
    assert lines["localstripe"].startswith("2 ")
    assert "localstripe not installed" in lines["localstripe"]


def test_compose_runs_the_locked_localstripe() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    match = re.search(r"pip install localstripe==(\S+) ", compose)
    assert match is not None
    assert match.group(1) == pins(DEV_LOCK)["localstripe"][0]
