"""Adds up the JSON reports of the per-role runs and judges them.

usage: summary.py MIN_CASES SECONDS ROLE=REPORT.json...

Prints one line per role and a summary line; exits 1 on any failure or
error, an operation left untested, a run that did not complete, or fewer
than MIN_CASES cases in all.
"""

import json
import sys
from collections import Counter


def main():
    min_cases, seconds = int(sys.argv[1]), float(sys.argv[2])
    total, by_check, problems = 0, Counter(), []
    roles = []
    for arg in sys.argv[3:]:
        role, path = arg.split("=", 1)
        roles.append(role)
        try:
            with open(path, encoding="utf-8") as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            problems.append(f"{role}: no report ({e})")
            continue
        cases = r["test_cases"]["generated"]
        ops = r["operations"]
        total += cases
        fails = Counter()
        for f in r["failures"]:
            fails[f'{f["code"]} {f["title"]}'] += f["count"]
        by_check.update(fails)
        errors = len(r["errors"])
        if errors:
            problems.append(f"{role}: {errors} errors")
        if ops["tested"] < ops["total"]:
            problems.append(f'{role}: {ops["tested"]}/{ops["total"]} operations tested')
        if not r["complete"]:
            problems.append(f'{role}: run stopped early ({r["stop_reason"]})')
        detail = ", ".join(f"{k}: {n}" for k, n in sorted(fails.items())) or "no failures"
        print(
            f'schemathesis: {role:<10} {cases:>6} cases, {ops["tested"]}/{ops["total"]} operations, '
            f'{r["running_time"]:.0f} s, {detail}'
        )
    if total < min_cases:
        problems.append(f"{total} cases, fewer than the {min_cases} required")
    failures = sum(by_check.values())
    detail = "; ".join(f"{k}: {n}" for k, n in sorted(by_check.items())) or "none per check"
    print(
        f"schemathesis: {total} cases over {len(roles)} roles in {seconds:.0f} s; "
        f"{failures} failures ({detail})"
    )
    for p in problems:
        print(f"schemathesis: {p}")
    sys.exit(1 if failures or problems else 0)


if __name__ == "__main__":
    main()
