#!/usr/bin/env python3
"""Independent verifier for dossier-chain/1 exports (docs/chain-format.md).

Written from the format document, sharing no code with the Rust implementation,
and using only the Python standard library, so anyone can check a dossier
export without trusting dossier's own software.

    python3 ops/verify_chain.py [--expect-head SEQ:HASH ...] [EXPORT.jsonl | -]

--expect-head may be given several times (heads recorded at different times);
every one is checked. Prints `OK head_seq=N head_hash=H` and exits 0, or prints
`FAIL seq=N kind=KIND detail` and exits 1 at the first violation. Exit 2 is a
usage or I/O error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from typing import Any, BinaryIO, Collection, Iterable

FORMAT_TAG = b"dossier-chain/1\n"
GENESIS = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64  # objects/arrays nested in a body, the event object being depth 1

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HASH = re.compile(r"[0-9a-f]{64}")
# [0-9], never \d: in Python's re, \d also matches non-ASCII digits such as U+0663
# or U+FF12, and int() accepts them. Wire formats take ASCII digits only.
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{6}Z")
_DECIMAL = re.compile(r"[0-9]+")

# Top-level members of an event and the check for each value.
_EVENT_MEMBERS = (
    "seq", "event_id", "stream_id", "stream_version", "event_type", "schema_version",
    "recorded_at", "effective_at", "actor", "reason", "correlation_id", "causation_id",
    "payload", "prev_hash", "stream_prev_hash",
)
_EXPORT_MEMBERS = {"seq", "stream_id", "stream_version", "prev_hash", "stream_prev_hash", "hash", "body"}


class Violation(Exception):
    """The first way the log fails verification; `kind` matches dossier's ViolationKind."""

    def __init__(self, seq: int, kind: str, detail: str) -> None:
        super().__init__(f"FAIL seq={seq} kind={kind} {detail}")
        self.seq, self.kind, self.detail = seq, kind, detail


# --- RFC 8785 (JCS) for dossier's subset: no floats, integers within +-(2^53-1) ---

_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _jcs_string(s: str) -> str:
    # RFC 8785 3.2.2.2: only '"', '\\' and U+0000..U+001F are escaped; the five
    # controls with a short form use it, the rest \u00xx in lowercase hex.
    # Everything else (including U+007F and U+2028) is written as itself.
    out = ['"']
    for ch in s:
        esc = _SHORT_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _utf16_key(s: str) -> bytes:
    # RFC 8785 3.2.3: members are sorted by their names' UTF-16 code units.
    # Big-endian UTF-16 bytes compare exactly like the code unit sequences.
    return s.encode("utf-16-be", "surrogatepass")


def canonicalize(value: Any) -> str:
    """RFC 8785 canonical JSON of a value built from dict/list/str/int/bool/None."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        # For integers within +-(2^53-1) the ECMAScript number form is plain decimal.
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is outside +-(2^53-1)")
        return str(value)
    if isinstance(value, str):
        return _jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonicalize(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _utf16_key(kv[0]))
        return "{" + ",".join(_jcs_string(k) + ":" + canonicalize(v) for k, v in items) + "}"
    raise ValueError(f"{type(value).__name__} is not allowed in dossier-chain/1 JSON (floats never are)")


def canonical_bytes(value: Any) -> bytes:
    # Strict UTF-8: a lone surrogate (possible via a \ud800 escape) is an error.
    return canonicalize(value).encode("utf-8")


def event_hash(body: bytes) -> str:
    """SHA-256("dossier-chain/1" || LF || body) as lowercase hex."""
    return hashlib.sha256(FORMAT_TAG + body).hexdigest()


# --- strict JSON parsing ----------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _no_float(text: str) -> Any:
    raise ValueError(f"number {text} is not an integer")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def parse_json(text: str) -> Any:
    return json.loads(
        text, object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_constant
    )


# --- event body -------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_timestamp(v: Any) -> bool:
    m = _TIMESTAMP.fullmatch(v) if isinstance(v, str) else None
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    # Proleptic Gregorian calendar, year 0000 included; no leap seconds.
    return 1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60 and second < 60


def _check_actor(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) == {"id", "name", "role"}
        and isinstance(v["id"], str) and bool(_UUID.fullmatch(v["id"]))
        and isinstance(v["name"], str)
        and isinstance(v["role"], str)
    )


def _uuid(v: Any) -> bool:
    return isinstance(v, str) and bool(_UUID.fullmatch(v))


def _hash(v: Any) -> bool:
    return isinstance(v, str) and bool(_HASH.fullmatch(v))


_CHECKS = {
    "seq": _is_int,
    "event_id": _uuid,
    "stream_id": _uuid,
    "stream_version": _is_int,
    "event_type": lambda v: isinstance(v, str),
    "schema_version": lambda v: _is_int(v) and -(2**31) <= v < 2**31,
    "recorded_at": _check_timestamp,
    "effective_at": _check_timestamp,
    "actor": _check_actor,
    "reason": lambda v: v is None or isinstance(v, str),
    "correlation_id": _uuid,
    "causation_id": lambda v: v is None or _uuid(v),
    "payload": lambda v: isinstance(v, dict),
    "prev_hash": _hash,
    "stream_prev_hash": _hash,
}
assert set(_CHECKS) == set(_EVENT_MEMBERS)


def _within_depth(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                return False
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return True


def parse_body(body: bytes) -> dict[str, Any]:
    """The event in `body`; ValueError unless it is a valid, canonical dossier-chain/1 event."""
    try:
        event = parse_json(body.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not _within_depth(event):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(event, dict):
        raise ValueError("body is not a JSON object")
    if set(event) != set(_EVENT_MEMBERS):
        missing = sorted(set(_EVENT_MEMBERS) - set(event))
        extra = sorted(set(event) - set(_EVENT_MEMBERS))
        raise ValueError(f"members missing {missing}, unknown {extra}")
    for name in _EVENT_MEMBERS:
        if not _CHECKS[name](event[name]):
            raise ValueError(f"member {name} has an invalid value {event[name]!r}")
    # One event, one spelling: the stored bytes must be exactly the canonical form.
    # This also enforces the number range everywhere, including in the payload.
    if canonical_bytes(event) != body:
        raise ValueError("body is not in canonical form (RFC 8785)")
    return event


# --- export lines and the chain rules ----------------------------------------


def _parse_line(line: bytes, expected_seq: int) -> dict[str, Any]:
    try:
        row = parse_json(line.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise Violation(expected_seq, "malformed", f"export line is not JSON: {e}") from None
    seq = row.get("seq") if isinstance(row, dict) else None
    at = seq if _is_int(seq) else expected_seq
    if not isinstance(row, dict) or set(row) != _EXPORT_MEMBERS:
        raise Violation(at, "malformed", f"export line must have exactly the members {sorted(_EXPORT_MEMBERS)}")
    ok = (
        _is_int(row["seq"]) and _uuid(row["stream_id"]) and _is_int(row["stream_version"])
        and _hash(row["prev_hash"]) and _hash(row["stream_prev_hash"]) and _hash(row["hash"])
        and isinstance(row["body"], str)
    )
    if not ok:
        raise Violation(at, "malformed", "export line has a member of the wrong type or spelling")
    return row


class ChainVerifier:
    """Feed export lines in file order with `push`, then call `finish`."""

    def __init__(self) -> None:
        self.next_seq = 1
        self.last_hash = GENESIS
        self.streams: dict[str, tuple[int, str]] = {}  # stream_id -> (version, hash)
        self.hashes_seen: dict[int, str] = {0: GENESIS}  # only kept for the head checks

    def push(self, line: bytes, keep_hashes_of: Collection[int] = ()) -> None:
        row = _parse_line(line, self.next_seq)
        seq = row["seq"]
        # 1. Position: rows must arrive as 1, 2, 3, ...
        if seq < self.next_seq:
            raise Violation(seq, "reordered", f"expected seq {self.next_seq} next")
        if seq > self.next_seq:
            raise Violation(self.next_seq, "gap", f"seq {self.next_seq} is missing; next stored seq is {seq}")
        # 2. Integrity of the stored bytes.
        try:
            body = row["body"].encode("utf-8")
        except UnicodeEncodeError:
            raise Violation(seq, "malformed", "body is not valid UTF-8 text") from None
        computed = event_hash(body)
        if computed != row["hash"]:
            raise Violation(seq, "bad_hash", f"stored {row['hash']} but body hashes to {computed}")
        # 3. The body is a valid, canonical event.
        try:
            event = parse_body(body)
        except ValueError as e:
            raise Violation(seq, "malformed", f"body is not a valid event: {e}") from None
        # 4. The body was stored under its own seq.
        if event["seq"] != seq:
            raise Violation(seq, "reordered", f"stored under seq {seq} but its body says seq {event['seq']}")
        # 5. The unhashed columns agree with the hashed body.
        for name in ("stream_id", "stream_version", "prev_hash", "stream_prev_hash"):
            if event[name] != row[name]:
                raise Violation(seq, "malformed", "indexed columns disagree with the hashed body")
        # 6. Global chain link.
        if event["prev_hash"] != self.last_hash:
            raise Violation(
                seq, "broken_link",
                f"prev_hash {event['prev_hash']} but seq {seq - 1} hashes to {self.last_hash}",
            )
        # 7. Per-stream chain link.
        stream = event["stream_id"]
        want_version, want_prev = self.streams.get(stream, (0, GENESIS))
        want_version += 1
        if event["stream_version"] != want_version or event["stream_prev_hash"] != want_prev:
            raise Violation(
                seq, "stream_link_broken",
                f"stream {stream} expects version {want_version} after {want_prev}, "
                f"found version {event['stream_version']} after {event['stream_prev_hash']}",
            )
        self.streams[stream] = (want_version, computed)
        self.last_hash = computed
        if seq in keep_hashes_of:
            self.hashes_seen[seq] = computed
        self.next_seq += 1

    def finish(self, expect_heads: Iterable[tuple[int, str]] = ()) -> tuple[int, str]:
        """The verified head, after checking every expected head (§8) in ascending seq order.

        Each head must be in the log at its seq with exactly its hash. The first that
        fails is reported: beyond the log's end as `gap` at the first missing seq (the
        one after the last event), otherwise as `head_mismatch` at the head's seq.
        """
        head_seq = self.next_seq - 1
        for seq, want in sorted(expect_heads):
            if seq > head_seq:
                raise Violation(head_seq + 1, "gap", f"the published head is seq {seq}, but the log ends at {head_seq}")
            got = self.hashes_seen.get(seq)
            if got != want:
                raise Violation(seq, "head_mismatch", f"the published head says {want} but seq {seq} hashes to {got}")
        return head_seq, self.last_hash


def _heads(expect_heads: tuple[int, str] | Iterable[tuple[int, str]] | None) -> list[tuple[int, str]]:
    # One (seq, hash) pair, any number of them, or None for no head check.
    if expect_heads is None:
        return []
    if isinstance(expect_heads, tuple) and len(expect_heads) == 2 and isinstance(expect_heads[0], int):
        return [expect_heads]
    return list(expect_heads)


def verify_lines(
    lines: Iterable[bytes], expect_heads: tuple[int, str] | Iterable[tuple[int, str]] | None = None
) -> tuple[int, str]:
    """Verifies an export; returns (head_seq, head_hash) or raises Violation.

    `expect_heads` is one published head (seq, hash) or several; every one is checked.
    """
    v = ChainVerifier()
    heads = _heads(expect_heads)
    keep = {seq for seq, _ in heads}
    for line in lines:
        if line.strip():  # blank lines (e.g. a final newline) carry nothing
            v.push(line, keep_hashes_of=keep)
    return v.finish(heads)


def _parse_head(s: str) -> tuple[int, str]:
    seq, sep, h = s.partition(":")
    # str.isdigit() would accept non-ASCII digits (U+0663 is int 3): ASCII only.
    if not sep or not _DECIMAL.fullmatch(seq) or not _HASH.fullmatch(h):
        raise argparse.ArgumentTypeError("expected SEQ:HASH, HASH being 64 lowercase hex characters")
    return int(seq), h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify a dossier-chain/1 export (JSON Lines).")
    ap.add_argument("export", nargs="?", default="-", help="export file, or - for stdin (default)")
    ap.add_argument("--expect-head", type=_parse_head, metavar="SEQ:HASH", action="append", default=[],
                    help="a published ledger head (GET /v1/ledger/head) the export must contain: "
                         "event SEQ with exactly hash HASH. May be repeated (heads recorded at "
                         "different times); every one is checked")
    args = ap.parse_args(argv)
    try:
        f: BinaryIO = sys.stdin.buffer if args.export == "-" else open(args.export, "rb")
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with f:
            head_seq, head_hash = verify_lines(f, args.expect_head)
    except Violation as v:
        print(f"FAIL seq={v.seq} kind={v.kind} {v.detail}")
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"OK head_seq={head_seq} head_hash={head_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
