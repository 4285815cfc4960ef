"""Tests for ops/verify_chain.py against docs/chain-vectors/ and the RFC 8785 vectors.

    python3 -m unittest ops/test_verify_chain.py      (from the repository root)
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verify_chain as vc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "docs" / "chain-vectors"
RFC8785 = ROOT / "crates" / "dossier-chain" / "tests" / "rfc8785"
SCRIPT = ROOT / "ops" / "verify_chain.py"


def load(rel: str):
    return json.loads((VECTORS / rel).read_text(encoding="utf-8"))


def lines(rel: str) -> list[bytes]:
    return (VECTORS / rel).read_bytes().splitlines(keepends=True)


def head_of(rel: str) -> tuple[int, str]:
    return vc.verify_lines(lines(rel))


def chain_hashes() -> dict[int, str]:
    """seq -> hash of the events in chain.jsonl (seq 0 is GENESIS)."""
    return {0: vc.GENESIS, **{json.loads(l)["seq"]: json.loads(l)["hash"] for l in lines("chain.jsonl")}}


def export_line(event: dict) -> bytes:
    """An export line carrying `event` canonicalised, with its true hash and matching columns."""
    body = vc.canonical_bytes(event).decode("utf-8")
    row = {k: event[k] for k in ("seq", "stream_id", "stream_version", "prev_hash", "stream_prev_hash")}
    return json.dumps({**row, "hash": vc.event_hash(body.encode("utf-8")), "body": body}).encode() + b"\n"


def with_digit_replaced(timestamp: str, digit_zero: int) -> str:
    """`timestamp` with its first digit written in another script's digits (same value),
    e.g. digit_zero=0xFF10 for full-width or 0x0660 for Arabic-Indic digits."""
    i = next(i for i, ch in enumerate(timestamp) if ch in "0123456789")
    return timestamp[:i] + chr(digit_zero + int(timestamp[i])) + timestamp[i + 1:]


class Canonicalization(unittest.TestCase):
    def test_rfc8785_vectors_within_the_subset(self):
        # The author's vectors without floats must canonicalise exactly; those with
        # floats are outside dossier's subset and must be refused, not approximated.
        for inp in sorted((RFC8785 / "input").glob("*.json")):
            with self.subTest(inp.name):
                expected = (RFC8785 / "output" / inp.name).read_bytes()
                try:
                    value = vc.parse_json(inp.read_text(encoding="utf-8"))
                except ValueError:
                    self.assertIn(inp.name, {"structures.json", "values.json"})
                    continue
                self.assertEqual(vc.canonical_bytes(value), expected)

    def test_utf16_member_order(self):
        # U+1F600 is D83D DE00 in UTF-16 and sorts before U+FF4E; by code point it would not.
        self.assertEqual(vc.canonicalize({"\uff4e": 1, "\U0001f600": 2, "a": 3}), '{"a":3,"\U0001f600":2,"\uff4e":1}')

    def test_string_escapes(self):
        s = "\"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é"
        self.assertEqual(vc.canonicalize(s), '"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028é"')

    def test_number_limits(self):
        self.assertEqual(vc.canonicalize([2**53 - 1, -(2**53 - 1), 0]), "[9007199254740991,-9007199254740991,0]")
        for bad in (2**53, -(2**53), 1.0, 0.5):
            with self.subTest(bad):
                with self.assertRaises(ValueError):
                    vc.canonicalize(bad)
        for text in ("1.0", "1e3", "NaN", "-Infinity"):
            with self.subTest(text):
                with self.assertRaises(ValueError):
                    vc.parse_json(text)


class Vectors(unittest.TestCase):
    def test_cases_canonical_bytes_and_hash(self):
        cases = load("vectors.json")
        self.assertEqual(
            [c["name"] for c in cases],
            ["first-event", "second-event-same-stream", "unicode", "sealed-envelope", "null-reason-causation"],
        )
        for case in cases:
            with self.subTest(case["name"]):
                body = case["canonical"].encode("utf-8")
                self.assertEqual(vc.canonical_bytes(case["event"]), body)
                self.assertEqual(vc.event_hash(body), case["hash"])
                self.assertEqual(vc.parse_body(body), case["event"])

    def test_preimage_layout(self):
        body = load("vectors.json")[0]["canonical"].encode("utf-8")
        self.assertEqual(vc.FORMAT_TAG.hex(), "646f73736965722d636861696e2f310a")
        import hashlib

        self.assertEqual(hashlib.sha256(b"dossier-chain/1\n" + body).hexdigest(), vc.event_hash(body))

    def test_rejected_bodies(self):
        for case in load("rejected.json"):
            with self.subTest(case["name"]):
                with self.assertRaises(ValueError):
                    vc.parse_body(case["body"].encode("utf-8"))

    def test_timestamps_take_ascii_digits_only(self):
        # re's \d matches U+FF12 or U+0662 and int() reads them, so a pattern with \d
        # accepted these timestamps as valid dates. §2: ASCII digits only.
        event = load("vectors.json")[0]["event"]
        self.assertEqual(event["seq"], 1)
        vc.parse_body(vc.canonical_bytes(event))  # the unchanged event is valid
        self.assertEqual(vc.verify_lines([export_line(event)])[0], 1)
        for member in ("recorded_at", "effective_at"):
            for script, zero in (("full-width", 0xFF10), ("Arabic-Indic", 0x0660)):
                with self.subTest(member=member, digits=script):
                    bad = {**event, member: with_digit_replaced(event[member], zero)}
                    self.assertNotEqual(bad[member], event[member])
                    with self.assertRaises(ValueError):
                        vc.parse_body(vc.canonical_bytes(bad))
                    with self.assertRaises(vc.Violation) as cm:
                        vc.verify_lines([export_line(bad)])
                    self.assertEqual((cm.exception.seq, cm.exception.kind), (1, "malformed"))
                    self.assertIn(member, cm.exception.detail)

    def test_rejected_bodies_fail_verification_even_with_matching_hash(self):
        for case in load("rejected.json"):
            with self.subTest(case["name"]):
                digest = vc.event_hash(case["body"].encode("utf-8"))
                row = {
                    "seq": 1, "stream_id": "00000000-0000-0000-0000-000000000000", "stream_version": 1,
                    "prev_hash": vc.GENESIS, "stream_prev_hash": vc.GENESIS, "hash": digest, "body": case["body"],
                }
                with self.assertRaises(vc.Violation) as cm:
                    vc.verify_lines([json.dumps(row).encode()])
                self.assertEqual((cm.exception.seq, cm.exception.kind), (1, "malformed"))


class Chains(unittest.TestCase):
    def test_valid_chain(self):
        cases = load("vectors.json")
        self.assertEqual(head_of("chain.jsonl"), (5, cases[-1]["hash"]))

    def test_tampered_files(self):
        expected = load("tampered/expected.json")
        files = sorted(p.name for p in (VECTORS / "tampered").glob("*.jsonl"))
        self.assertEqual(files, sorted(e["file"] for e in expected))
        for exp in expected:
            with self.subTest(exp["file"]):
                head = vc._parse_head(exp["expect_head"]) if exp.get("expect_head") else None
                with self.assertRaises(vc.Violation) as cm:
                    vc.verify_lines(lines("tampered/" + exp["file"]), head)
                self.assertEqual((cm.exception.seq, cm.exception.kind), (exp["seq"], exp["kind"]))

    def test_expect_head(self):
        chain = lines("chain.jsonl")
        h3 = json.loads(chain[2])["hash"]
        h2 = json.loads(chain[1])["hash"]
        # A head published at seq 3 is a prefix of a longer export: fine.
        self.assertEqual(vc.verify_lines(chain, (3, h3))[0], 5)
        with self.assertRaises(vc.Violation) as cm:
            vc.verify_lines(chain, (3, h2))
        self.assertEqual((cm.exception.seq, cm.exception.kind), (3, "head_mismatch"))
        with self.assertRaises(vc.Violation) as cm:
            vc.verify_lines(chain, (6, h3))
        self.assertEqual((cm.exception.seq, cm.exception.kind), (6, "gap"))

    def test_every_expect_head_is_checked(self):
        chain, h = lines("chain.jsonl"), chain_hashes()

        def violation(heads):
            with self.assertRaises(vc.Violation) as cm:
                vc.verify_lines(chain, heads)
            return cm.exception.seq, cm.exception.kind

        # Heads recorded at different times, all contained in the export.
        self.assertEqual(vc.verify_lines(chain, [(2, h[2]), (5, h[5]), (0, vc.GENESIS)]), (5, h[5]))
        self.assertEqual(vc.verify_lines(chain, []), (5, h[5]))
        # A wrong head fails wherever it comes among the heads, not only when it is last.
        self.assertEqual(violation([(3, h[2]), (5, h[5])]), (3, "head_mismatch"))
        self.assertEqual(violation([(5, h[5]), (3, h[2])]), (3, "head_mismatch"))
        self.assertEqual(violation([(1, h[1]), (4, h[3]), (5, h[5])]), (4, "head_mismatch"))
        # The same seq with two different hashes cannot both hold.
        self.assertEqual(violation([(3, h[3]), (3, h[2])]), (3, "head_mismatch"))
        # A head beyond the end: gap at the first missing seq (6), not at the head's seq.
        self.assertEqual(violation([(9, h[5]), (3, h[3])]), (6, "gap"))
        self.assertEqual(violation([(7, h[5]), (9, h[5])]), (6, "gap"))
        # Checked in ascending seq order: the earliest failing head is reported.
        self.assertEqual(violation([(9, h[5]), (3, h[2])]), (3, "head_mismatch"))
        # tampered/truncated.jsonl ends at seq 4: the first missing seq is 5 for any later head.
        truncated = lines("tampered/truncated.jsonl")
        for heads in ([(2, h[2]), (5, h[5])], [(7, h[5])], [(5, h[5]), (7, h[5]), (4, h[4])]):
            with self.subTest(heads=heads):
                with self.assertRaises(vc.Violation) as cm:
                    vc.verify_lines(truncated, heads)
                self.assertEqual((cm.exception.seq, cm.exception.kind), (5, "gap"))

    def test_empty_export_is_the_genesis_head(self):
        self.assertEqual(vc.verify_lines([]), (0, vc.GENESIS))

    def test_broken_export_lines(self):
        good = lines("chain.jsonl")
        row = json.loads(good[0])
        for name, line in [
            ("not json", b"{nope\n"),
            ("missing member", json.dumps({k: v for k, v in row.items() if k != "hash"}).encode()),
            ("extra member", json.dumps({**row, "x": 1}).encode()),
            ("uppercase hash", json.dumps({**row, "hash": row["hash"].upper()}).encode()),
            ("bool seq", json.dumps({**row, "seq": True}).encode()),
        ]:
            with self.subTest(name):
                with self.assertRaises(vc.Violation) as cm:
                    vc.verify_lines([line])
                self.assertEqual((cm.exception.seq, cm.exception.kind), (1, "malformed"))


class CommandLine(unittest.TestCase):
    def run_script(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, check=False
        )

    def test_ok_from_file_and_stdin(self):
        head_seq, head_hash = head_of("chain.jsonl")
        want = f"OK head_seq={head_seq} head_hash={head_hash}\n".encode()
        r = self.run_script("--expect-head", f"{head_seq}:{head_hash}", str(VECTORS / "chain.jsonl"))
        self.assertEqual((r.returncode, r.stdout), (0, want))
        r = self.run_script(stdin=(VECTORS / "chain.jsonl").read_bytes())
        self.assertEqual((r.returncode, r.stdout), (0, want))

    def test_fail_line(self):
        r = self.run_script(str(VECTORS / "tampered" / "gap.jsonl"))
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stdout.startswith(b"FAIL seq=3 kind=gap "), r.stdout)

    def test_usage_errors(self):
        self.assertEqual(self.run_script("--expect-head", "5:XYZ", str(VECTORS / "chain.jsonl")).returncode, 2)
        self.assertEqual(self.run_script(str(VECTORS / "no-such-file.jsonl")).returncode, 2)
        # SEQ takes ASCII digits only: U+0665 (ARABIC-INDIC DIGIT FIVE) is not 5.
        h5 = chain_hashes()[5]
        for seq in ("\u0665", "\uff15", "+5", "-5", " 5", ""):
            with self.subTest(seq=seq):
                r = self.run_script("--expect-head", f"{seq}:{h5}", str(VECTORS / "chain.jsonl"))
                self.assertEqual(r.returncode, 2, r.stdout)

    def test_repeated_expect_head(self):
        h, chain = chain_hashes(), str(VECTORS / "chain.jsonl")

        def run(*heads: str, export: str = chain) -> subprocess.CompletedProcess:
            return self.run_script(*(a for head in heads for a in ("--expect-head", head)), export)

        r = run(f"3:{h[3]}", f"5:{h[5]}", f"0:{vc.GENESIS}")
        self.assertEqual((r.returncode, r.stdout), (0, f"OK head_seq=5 head_hash={h[5]}\n".encode()))
        for heads, want in [
            ((f"3:{h[2]}", f"5:{h[5]}"), b"FAIL seq=3 kind=head_mismatch "),  # the wrong head is not the last
            ((f"5:{h[5]}", f"3:{h[2]}"), b"FAIL seq=3 kind=head_mismatch "),
            ((f"9:{h[5]}", f"3:{h[3]}"), b"FAIL seq=6 kind=gap "),  # first missing seq, not 9
        ]:
            with self.subTest(heads=heads):
                r = run(*heads)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertTrue(r.stdout.startswith(want), r.stdout)
        r = run(f"2:{h[2]}", f"7:{h[5]}", export=str(VECTORS / "tampered" / "truncated.jsonl"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertTrue(r.stdout.startswith(b"FAIL seq=5 kind=gap "), r.stdout)

    def test_help_says_expect_head_may_be_repeated(self):
        r = self.run_script("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"--expect-head", r.stdout)
        self.assertIn(b"repeated", r.stdout)

    def test_full_width_digit_in_recorded_at_is_rejected(self):
        event = load("vectors.json")[0]["event"]
        bad = {**event, "recorded_at": with_digit_replaced(event["recorded_at"], 0xFF10)}
        self.assertIn("\uff12", bad["recorded_at"])  # 2025-... became \uff12025-...
        r = self.run_script(stdin=export_line(bad))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertTrue(r.stdout.startswith(b"FAIL seq=1 kind=malformed "), r.stdout)
        self.assertIn(b"recorded_at", r.stdout)
        r = self.run_script(stdin=export_line(event))
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main()
