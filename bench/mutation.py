"""Mutation testing of the money core: mutmut over ``billing/``, ``tax/`` and
``ledger/posting.py``, one module at a time, with a score per module.

A mutant is a small deliberate change to the code (``<`` for ``<=``, ``and`` for ``or``,
a dropped argument); it is *killed* when some test fails on it and *survives* when every
test still passes. The score of a module is killed ÷ (killed + survived); a mutant
that no test reaches counts as survived, one that times out as killed.

How it runs:

- The working tree (tracked and untracked files, not the ignored ones) is copied to a
  scratch folder (``--workdir``), and mutmut runs there, so the worktree is never
  touched. Each module gets its own ``[tool.mutmut]`` section, that module only, and
  the test folders that exercise it (``TESTS_FOR``); mutmut then runs, for each
  mutant, only the tests that reach the mutated function.
- Every mutant runs in a process forked from a server that has not imported the
  project (mutmut's ``forkserver`` isolation). Where the module keeps a cache (a
  ``@cache`` loader or a module ``global``: the network-rule table, the rate table,
  the policy catalog), the server does not even collect the tests first, so each
  mutant imports the module and fills the cache afresh from its own mutated code;
  and under mutation the test session empties those caches before every test, so
  mutmut links a loader's mutants to every test that loads the data, not only to
  the first one that filled the cache.
- ``DUNWELL_TEST_NO_HARD_EXIT=1`` keeps the test session's hard exit from killing
  mutmut's workers; ``DUNWELL_MUTATION=1`` gives the property tests a smaller example
  budget (``tests/support/mutation.py``) with derandomized examples, so a verdict does
  not depend on the draw.
- ``--changed [BASE]`` mutates only the modules changed since BASE (default ``main``),
  uncommitted changes included: a quick look before a stop. ``--sample N`` tests N
  mutants per module, drawn with ``--seed``; a sampled module says so in its line.

Not part of ``make test`` or CI: a full run takes hours on two shared cores (a pure
module runs 0.5-1.5 mutants a second, a ledger mutant about 30 s since each test
session migrates its own database); sample or name modules for a quicker look. ``make mutation`` runs it under ``nice -n 19``; pass
arguments with ``make mutation ARGS="--changed"``.

Output: one line per module (score, killed, survived, mutants, seconds, and whether it
was sampled or ran each mutant fresh), then each survivor as mutmut's diff, and last
one JSON line ``{"min_score", "modules": {module: score}, "survived", "mutants"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("billing", "tax", "ledger/posting.py")
# The packages copied into mutmut's tree, so every import resolves to one copy.
PACKAGES = ("billing", "tax", "ledger", "stores", "activities", "workflows", "api", "dunwell")
# The tests that exercise a module: the first matching prefix wins. Only fast suites
# (no Temporal server, no localstripe): mutmut reruns them for every mutant.
TESTS_FOR: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("billing/dunning/", ("tests/dunning",)),
    ("billing/declines.py", ("tests/billing",)),
    ("billing/proration.py", ("tests/subscriptions",)),
    ("billing/periods.py", ("tests/subscriptions",)),
    ("billing/catalog.py", ("tests/subscriptions",)),
    ("billing/lifecycle.py", ("tests/subscriptions",)),
    ("billing/entitlements.py", ("tests/billing/test_entitlements.py",)),
    ("billing/money.py", ("tests/subscriptions", "tests/ledger/test_properties.py")),
    ("billing/pan.py", ("tests/gateway/test_pan.py",)),
    ("billing/sca.py", ("tests/gateway/test_sca.py",)),
    ("billing/events.py", ("tests/webhooks",)),
    ("billing/gateway.py", ("tests/gateway/test_fake_gateway_lists.py",)),
    ("billing/reconciliation/", ("tests/reconciliation",)),
    ("billing/payment_verification.py", ("tests/billing/test_payment_verification.py",)),
    ("billing/disputes.py", ("tests/billing/test_disputes.py",)),
    ("billing/outbound.py", ("tests/billing/test_outbound_rules.py",)),
    ("tax/", ("tests/tax",)),
    ("ledger/posting.py", ("tests/ledger",)),
)
# A module keeps a cache when a loader is memoised or a module global is rebound.
CACHE_PATTERN = re.compile(r"^\s*(@(functools\.)?(lru_)?cache\b|global\s)", re.MULTILINE)
KILLED = frozenset({"killed", "timeout", "caught by type check"})
NOT_RUN = frozenset({"skipped", "not checked", "check was interrupted by user"})


@dataclass
class ModuleResult:
    module: str
    statuses: dict[str, str]  # mutant name -> mutmut status
    seconds: float
    fresh: bool
    sampled_from: int | None = None  # the module's mutant count when sampled
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def killed(self) -> int:
        return sum(status in KILLED for status in self.statuses.values())

    @property
    def survivors(self) -> list[str]:
        return sorted(
            name
            for name, status in self.statuses.items()
            if status not in KILLED and status not in NOT_RUN
        )

    @property
    def mutants(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def score(self) -> float | None:
        return round(self.killed / self.mutants, 4) if self.mutants else None

    def line(self) -> str:
        score = "n/a" if self.score is None else f"{self.score:.3f}"
        how = "fresh process per mutant" if self.fresh else "forked after collection"
        how += ", caches emptied per test"
        if self.sampled_from is not None:
            how += f", sampled {len(self.statuses)} of {self.sampled_from}"
        timeouts = sum(status == "timeout" for status in self.statuses.values())
        if timeouts:
            how += f", {timeouts} of the killed by timeout"
        others = len(self.statuses) - self.mutants
        skipped = f", {others} not run" if others else ""
        return (
            f"{self.module}: score {score} killed {self.killed} survived "
            f"{len(self.survivors)} of {self.mutants}{skipped} in {self.seconds:.0f} s ({how})"
        )


def summary(results: Sequence[ModuleResult]) -> dict[str, object]:
    """The last line: the lowest module score, each module's, and the totals."""
    scores = {r.module: r.score for r in results}
    known = [s for s in scores.values() if s is not None]
    return {
        "min_score": min(known) if known else None,
        "modules": scores,
        "survived": sum(len(r.survivors) for r in results),
        "mutants": sum(r.mutants for r in results),
    }


def suites_for(module: str) -> tuple[str, ...]:
    for prefix, tests in TESTS_FOR:
        if module == prefix or (prefix.endswith("/") and module.startswith(prefix)):
            return tests
    raise SystemExit(f"no tests are mapped to {module}: add it to TESTS_FOR in bench/mutation.py")


def all_modules(root: Path = REPO) -> list[str]:
    found: list[str] = []
    for target in TARGETS:
        path = root / target
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        found += [str(f.relative_to(root)) for f in files if f.name != "__init__.py"]
    return found


def select_modules(candidates: Iterable[str], wanted: Sequence[str]) -> list[str]:
    """The candidates that are, or lie under, one of ``wanted`` (all when empty)."""
    if not wanted:
        return list(candidates)
    norm = [w.rstrip("/") for w in wanted]
    return [m for m in candidates if any(m == w or m.startswith(w + "/") for w in norm)]


def changed_files(base: str, root: Path = REPO) -> set[str]:
    """Files changed since ``base``: commits after it and uncommitted changes."""

    def git(*args: str) -> list[str]:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        return [line for line in out.splitlines() if line]

    merge_base = git("merge-base", base, "HEAD")[0]
    return set(git("diff", "--name-only", merge_base)) | set(
        git("ls-files", "--others", "--exclude-standard")
    )


def keeps_cache(source: str) -> bool:
    return CACHE_PATTERN.search(source) is not None


def mutmut_section(module: str, fresh: bool) -> str:
    tests = suites_for(module)
    return (
        "\n[tool.mutmut]\n"
        f"source_paths = {json.dumps(list(PACKAGES))}\n"
        f"only_mutate = {json.dumps([module])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(list(tests))}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        'process_isolation = "forkserver"\n'
        f'forkserver_warmup = "{"none" if fresh else "collect"}"\n'
        "use_git_change_detection = false\n"
        # mutmut's CPU-time limit is 15 times the tests' own time plus this: room for a
        # session's setup (the ledger's database and migrations), so that a slow start
        # is never taken for a hang (a timeout counts as killed).
        "timeout_constant = 30.0\n"
    )


def copy_tree(dest: Path, root: Path = REPO) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = root / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def mutmut_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DUNWELL_TEST_NO_HARD_EXIT="1", DUNWELL_MUTATION="1", DUNWELL_ENV="test")
    env.pop("MUTANT_UNDER_TEST", None)
    return env


def mutmut(ws: Path, log: Path, *args: str) -> int:
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        return subprocess.run(
            command, cwd=ws, env=mutmut_env(), stdout=out, stderr=subprocess.STDOUT
        ).returncode


def read_statuses(ws: Path, module: str) -> dict[str, str]:
    from mutmut.stats import status_by_exit_code

    meta = ws / "mutants" / f"{module}.meta"
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in codes.items()}


def run_module(
    module: str,
    workdir: Path,
    *,
    sample: int | None,
    seed: int,
    max_children: int,
    allow_fresh: bool = True,
) -> ModuleResult:
    ws = workdir / "tree"
    log = workdir / (module.replace("/", "_") + ".log")
    log.unlink(missing_ok=True)
    shutil.rmtree(ws / "mutants", ignore_errors=True)
    pyproject = ws / "pyproject.toml"
    base = (REPO / "pyproject.toml").read_text()
    fresh = allow_fresh and keeps_cache((REPO / module).read_text())
    pyproject.write_text(base + mutmut_section(module, fresh))
    started = time.monotonic()
    names: list[str] = []
    sampled_from = None
    if sample is not None:
        # Generates the mutants and collects which tests reach them, then stops: no
        # mutant matches this name. The real run below reuses both.
        mutmut(ws, log, "run", "--max-children", str(max_children), "dunwell-list-only")
        generated = sorted(read_statuses(ws, module))
        if len(generated) > sample:
            names = sorted(random.Random(f"{seed}:{module}").sample(generated, sample))
            sampled_from = len(generated)
    code = mutmut(ws, log, "run", "--max-children", str(max_children), *names)
    statuses = read_statuses(ws, module)
    if names:
        statuses = {name: statuses[name] for name in names}
    if code != 0 and not statuses:
        raise SystemExit(f"mutmut failed on {module}; see {log}")
    result = ModuleResult(module, statuses, time.monotonic() - started, fresh, sampled_from)
    for name in result.survivors:
        shown = subprocess.run(
            [str(Path(sys.executable).with_name("mutmut")), "show", name],
            cwd=ws,
            env=mutmut_env(),
            capture_output=True,
            text=True,
        )
        result.diffs[name] = shown.stdout.strip() or f"# {name}: {statuses[name]}"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules or folders (default: all targets)")
    parser.add_argument(
        "--changed",
        nargs="?",
        const="main",
        metavar="BASE",
        help="only modules changed since BASE (default main), uncommitted changes included",
    )
    parser.add_argument("--sample", type=int, help="test at most N mutants per module")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutants")
    parser.add_argument(
        "--collect-first",
        action="store_true",
        help="fork every mutant after test collection, cached modules too (faster; their "
        "caches are still emptied before every test)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/dunwell-mutation"), help="scratch folder"
    )
    args = parser.parse_args(argv)

    modules = select_modules(all_modules(), args.modules)
    if args.changed:
        changed = changed_files(args.changed)
        modules = [m for m in modules if m in changed]
        print(f"changed since {args.changed}: {', '.join(modules) or 'no module'}")
    if args.sample is not None:
        print(f"sampling: at most {args.sample} mutants per module, seed {args.seed}")

    shutil.rmtree(args.workdir / "tree", ignore_errors=True)
    copy_tree(args.workdir / "tree")
    results = []
    for module in modules:
        result = run_module(
            module,
            args.workdir,
            sample=args.sample,
            seed=args.seed,
            max_children=args.max_children,
            allow_fresh=not args.collect_first,
        )
        print(result.line(), flush=True)
        results.append(result)

    for result in results:
        for name in result.survivors:
            print(f"\n--- survived: {name}\n{result.diffs[name]}")
    print(json.dumps(summary(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
