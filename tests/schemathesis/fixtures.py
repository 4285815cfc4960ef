"""Waits for the server and writes the known ids the fuzzer draws on.

usage: fixtures.py BASE_URL TOKEN OUT_DIR

Writes libFuzzer-style dictionaries (one quoted value a line) that
schemathesis.toml binds to path and body parameters, so that generated
requests name real customers, complaints, orders and invoices and get past
404 into the validation and domain rules behind it.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def get(base, path, token=None):
    req = urllib.request.Request(base + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)


def wait_ready(base, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if get(base, "/readyz").get("status") == "ready":
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"fixtures: {base}/readyz did not answer ready within {seconds} s")
        time.sleep(0.5)


def write(path, values):
    values = sorted(set(values))
    if not values:
        sys.exit(f"fixtures: no values for {path}; did the demo data load?")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f'"{v}"\n' for v in values)
    return len(values)


def main():
    base, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
    wait_ready(base)
    customers = [c["id"] for c in get(base, "/v1/customers?limit=200", token)["items"]]
    complaints, orders, invoices = [], [], []
    for cid in customers:
        view = get(base, f"/v1/customers/{cid}", token)
        complaints += view.get("open_complaints") or []
        orders += view.get("orders") or []
        invoices += list((view.get("receivables") or {}).keys())
    counts = {
        name: write(f"{out}/{name}.dict", values)
        for name, values in [
            ("customers", customers),
            ("complaints", complaints),
            ("orders", orders),
            ("invoices", invoices),
        ]
    }
    print("fixtures: " + ", ".join(f"{n} {name}" for name, n in counts.items()))


if __name__ == "__main__":
    main()
