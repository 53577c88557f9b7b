"""bench/mutation.py's own arithmetic and choices (mutmut itself is not run here)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from bench.mutation import (
    REPO,
    ModuleResult,
    all_modules,
    changed_files,
    keeps_cache,
    mutmut_section,
    select_modules,
    suites_for,
    summary,
)


def result(module: str, *statuses: str) -> ModuleResult:
    return ModuleResult(
        module, {f"m{i}": s for i, s in enumerate(statuses)}, seconds=1.0, fresh=False
    )


def test_score_counts_timeouts_as_killed_and_unreached_mutants_as_survived() -> None:
    r = result("billing/x.py", "killed", "timeout", "survived", "no tests", "skipped")
    assert (r.killed, len(r.survivors), r.mutants) == (2, 2, 4)
    assert r.score == 0.5
    assert r.survivors == ["m2", "m3"]
    assert "score 0.500 killed 2 survived 2 of 4, 1 not run" in r.line()


def test_the_last_line_has_the_lowest_score_and_the_totals() -> None:
    results = [
        result("billing/a.py", "killed", "killed", "killed", "survived"),
        result("tax/b.py", "killed", "killed"),
        result("tax/empty.py"),
    ]
    assert summary(results) == {
        "min_score": 0.75,
        "modules": {"billing/a.py": 0.75, "tax/b.py": 1.0, "tax/empty.py": None},
        "survived": 1,
        "mutants": 6,
    }


def test_a_sampled_module_says_so() -> None:
    r = ModuleResult("tax/b.py", {"a": "killed"}, 2.0, fresh=True, sampled_from=40)
    assert r.line().endswith("(fresh process per mutant, caches emptied per test, sampled 1 of 40)")


def test_every_target_module_has_existing_tests_mapped() -> None:
    modules = all_modules()
    assert {"billing/proration.py", "tax/rates.py", "ledger/posting.py"} <= set(modules)
    assert not any(m.startswith("ledger/") and m != "ledger/posting.py" for m in modules)
    for module in modules:
        assert all((REPO / path).exists() for path in suites_for(module)), module
    with pytest.raises(SystemExit, match="TESTS_FOR"):
        suites_for("stores/anything.py")


def test_modules_are_chosen_by_file_or_folder() -> None:
    modules = ["billing/dunning/scheduler.py", "billing/declines.py", "tax/rates.py"]
    assert select_modules(modules, []) == modules
    assert select_modules(modules, ["billing/dunning/"]) == ["billing/dunning/scheduler.py"]
    assert select_modules(modules, ["tax/rates.py", "billing/declines.py"]) == [
        "billing/declines.py",
        "tax/rates.py",
    ]
    assert select_modules(modules, ["billing/dun"]) == []


@pytest.mark.parametrize(
    ("module", "cached"),
    [
        ("billing/dunning/network_rules.py", True),
        ("billing/dunning/policy.py", True),
        ("tax/rates.py", True),
        ("billing/proration.py", False),
        ("billing/dunning/scheduler.py", False),
    ],
)
def test_modules_that_keep_a_cache_run_each_mutant_fresh(module: str, cached: bool) -> None:
    assert keeps_cache((REPO / module).read_text()) is cached
    section = tomllib.loads(mutmut_section(module, cached))["tool"]["mutmut"]
    assert section["only_mutate"] == [module]
    assert section["forkserver_warmup"] == ("none" if cached else "collect")
    assert section["process_isolation"] == "forkserver"
    assert section["pytest_add_cli_args_test_selection"] == list(suites_for(module))


def test_changed_files_are_the_commits_since_base_and_uncommitted_work(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "work")
    (tmp_path / "a.py").write_text("x = 2\n")
    git("commit", "-q", "-am", "change a")
    (tmp_path / "b.py").write_text("x = 3\n")  # uncommitted
    (tmp_path / "d.py").write_text("x = 4\n")  # untracked
    assert changed_files("main", tmp_path) == {"a.py", "b.py", "d.py"}


def test_clear_caches_empties_the_loaders_caches() -> None:
    from billing.dunning import policy
    from billing.dunning.network_rules import network_rules
    from tax import rates
    from tests.support.mutation import clear_caches

    first = network_rules()
    rates.load_rate_table()
    assert network_rules() is first and rates._default is not None
    assert clear_caches() >= 3
    assert network_rules() is not first
    assert rates._default is None
    assert policy._catalog.cache_info().currsize == 0
