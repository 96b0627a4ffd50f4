#!/usr/bin/env python3
"""Independent verifier for robit audit logs (format version 1, docs/audit-format.md).

    python3 docs/verify_audit.py RUN_DIR_OR_AUDIT_JSONL [--key PUB] [--anchor HASH] [--allow-incomplete]

Prints "ok" and the head hash, or "FAIL line N: <reason>: <detail>" and exits 6.
Needs only the standard library plus `cryptography` for Ed25519 (pip install cryptography).
"""
import base64, hashlib, json, os, re, sys

PREFIX_PUB = "robit-ed25519 "
PREFIX_PRIV = "robit-ed25519-private "
KEYS = ["actor", "data", "hash", "prev", "run", "seq", "ts", "type", "v"]


class Fail(Exception):
    def __init__(self, line, reason, detail):
        super().__init__(f"line {line}: {reason}: {detail}")


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def only_ints(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, int):
        return abs(v) < 2**53
    if isinstance(v, list):
        return all(only_ints(x) for x in v)
    if isinstance(v, dict):
        return all(only_ints(x) for x in v.values())
    return False  # floats


def blob_refs(v):
    if isinstance(v, dict):
        if set(v) == {"blob", "size"} and isinstance(v["blob"], str) and v["blob"].startswith("sha256:"):
            yield v["blob"][7:], v["size"]
        for x in v.values():
            yield from blob_refs(x)
    elif isinstance(v, list):
        for x in v:
            yield from blob_refs(x)


def load_pubkey(arg):
    text = open(arg).read() if os.path.isfile(arg) else arg
    text = text.strip()
    if text.startswith(PREFIX_PRIV):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        seed = base64.b64decode(text[len(PREFIX_PRIV):])
        pub = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if text.startswith(PREFIX_PUB):
        text = text[len(PREFIX_PUB):]
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise SystemExit("--key: not a 32-byte Ed25519 public key")
    return raw


def ed25519_ok(pub, sig, msg):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.exceptions import InvalidSignature
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False


SEQ = re.compile(rb',"seq":(\d+),"ts":')


def verify(path, pinned=None, anchor=None, allow_incomplete=False):
    """Checks the log line by line, in order, and raises Fail for the first bad line."""
    if os.path.isdir(path):
        path = os.path.join(path, "audit.jsonl")
    blobdir = os.path.join(os.path.dirname(path) or ".", "blobs")
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    torn = lines.pop()  # bytes after the last newline
    seqs = [int(m.group(1)) if m else None for m in (SEQ.search(b) for b in lines)]
    records = []
    prev = "0" * 64
    key = None
    for i, b in enumerate(lines):
        n = i + 1
        try:
            text = b.decode("utf-8")
            rec = json.loads(text)
        except (UnicodeDecodeError, ValueError) as e:
            raise Fail(n, "modified", f"not JSON: {e}")
        if not isinstance(rec, dict) or sorted(rec) != KEYS or not only_ints(rec) or canonical(rec) != text:
            raise Fail(n, "modified", "not a canonical record")
        body = dict(rec)
        h = body.pop("hash")
        if hashlib.sha256(canonical(body).encode("utf-8")).hexdigest() != h:
            raise Fail(n, "modified", "its hash does not match its content")
        if rec["v"] != 1:
            raise Fail(n, "modified", "v is not 1")
        if rec["seq"] != i or rec["prev"] != prev:
            s = rec["seq"]
            if s == i:
                raise Fail(n - 1, "modified", f"line {n}'s prev does not match this line's hash")
            if s == i - 1 and i >= 2 and rec["prev"] == records[i - 2]["hash"]:
                raise Fail(n - 1, "inserted", f"line {n} continues the chain from line {n - 2}")
            if s > i:
                if i in seqs[i + 1:]:
                    raise Fail(n, "reordered", f"expected seq {i}, found {s}")
                raise Fail(n, "deleted", f"expected seq {i}, found {s}")
            raise Fail(n, "inserted" if s == i - 1 else "reordered", f"expected seq {i}, found seq {s} again")
        if records and rec["run"] != records[0]["run"]:
            raise Fail(n, "modified", "run id differs")
        data = rec["data"]
        if i == 0:
            if rec["type"] != "run.start":
                raise Fail(n, "modified", "first record is not run.start")
            pk = data.get("pubkey")
            if pk is None:
                if pinned is not None:
                    raise Fail(n, "bad signature", "log is unsigned but a key is pinned")
            else:
                raw_pk = base64.b64decode(pk)
                if hashlib.sha256(raw_pk).hexdigest()[:16] != data.get("key_id"):
                    raise Fail(n, "modified", "key_id does not match pubkey")
                if pinned is not None and raw_pk != pinned:
                    raise Fail(n, "bad signature", "run.start names another key than the pinned one")
                key = raw_pk
        if rec["type"] == "checkpoint":
            if set(data) != {"upto", "head", "key_id", "sig"}:
                raise Fail(n, "modified", "bad checkpoint data")
            if data["upto"] != rec["seq"] - 1 or data["head"] != rec["prev"]:
                raise Fail(n, "bad signature", "checkpoint does not cover the record before it (replayed)")
            if key is not None:
                msg = f"robit-audit-v1\n{rec['run']}\n{data['upto']}\n{data['head']}".encode()
                if data["key_id"] != hashlib.sha256(key).hexdigest()[:16] or not isinstance(data["sig"], str) \
                        or not ed25519_ok(key, base64.b64decode(data["sig"]), msg):
                    raise Fail(n, "bad signature", "signature does not verify")
            elif data["sig"] is not None:
                raise Fail(n, "bad signature", "signed checkpoint in an unsigned log")
        for hexd, size in blob_refs(data):
            p = os.path.join(blobdir, hexd)
            if not os.path.isfile(p):
                raise Fail(n, "missing blob", hexd)
            with open(p, "rb") as f:
                content = f.read()
            if hashlib.sha256(content).hexdigest() != hexd or len(content) != size:
                raise Fail(n, "altered blob", hexd)
        prev = rec["hash"]
        records.append(rec)

    if torn and not allow_incomplete:
        raise Fail(len(lines) + 1, "truncated", "the last line is cut mid-record")
    if not records:
        if allow_incomplete:
            return None
        raise Fail(1, "truncated", "no records")
    finished = len(records) >= 2 and records[-1]["type"] == "checkpoint" and records[-2]["type"] == "run.end"
    if not finished and not allow_incomplete:
        raise Fail(len(records), "truncated", "no run.end followed by a final checkpoint")
    head = records[-1]["hash"]
    if anchor is not None and anchor.lower() != head:
        raise Fail(len(records), "anchor mismatch", f"head is {head}")
    return head


def main(argv):
    args, key, anchor, incomplete = [], None, None, False
    it = iter(argv)
    for a in it:
        if a == "--key":
            key = load_pubkey(next(it))
        elif a == "--anchor":
            anchor = next(it)
        elif a == "--allow-incomplete":
            incomplete = True
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        head = verify(args[0], key, anchor, incomplete)
    except Fail as e:
        print(f"FAIL {e}")
        return 6
    print("ok")
    print(f"head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
