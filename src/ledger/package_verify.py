#!/usr/bin/env python3
"""Checks an annexa evidence package without annexa: Python 3's standard library, and
OpenSSL 3 for the Ed25519 signatures.

    python3 verify.py VERIFIER-FILE [PACKAGE-FOLDER]
    python3 verify.py VERIFIER-FILE --sample SAMPLE-FILE

VERIFIER-FILE is the key list the organization gave you (`annexa keys export`), not the
package's own copy. The folder defaults to this script's. Every check runs; each failure is
printed, and the exit status is 1 when there is any, 0 when there is none.

It checks: the signature on package.json.sig and the hashes it signs (package.json,
SHA256SUMS); every file's SHA-256, and that no file is there that SHA256SUMS does not list;
the signed checkpoint and the tree head package.json names; each run's manifest hash, its
RFC 6962 audit path (RFC 9162 section 2.1.3.2), that it finished in the period and that every
object it lists is in the package with its SHA-256 and size; that every object and manifest
belongs to a run of the period; the consistency proof from the previous export (RFC 9162
section 2.1.4.2); and the report bundle's own signature and files.

With --sample it redoes a sample `annexa sample` drew: the population's hash, the audit event
that froze it and its audit path to the checkpoint whose root is the seed, that checkpoint's
signature, and the selection (the items with the lowest SHA-256(seed || id)).
"""
import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile

failures = []


def fail(where, what):
    failures.append(f"{where}: {what}")


def sha256_file(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def read_keys(path):
    """Key id (4 bytes) -> (name, 32-byte Ed25519 key, revoked-at or None)."""
    keys = {}
    for line in open(path, encoding="utf-8"):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        name, key_id, b64 = fields[0].split("+", 2)
        raw = base64.b64decode(b64)
        if len(raw) != 33 or raw[0] != 1:
            sys.exit(f"{path}: {name}: not an Ed25519 verifier")
        computed = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if computed.hex() != key_id:
            sys.exit(f"{path}: {name}: the key id {key_id} does not match the key")
        revoked = [f[8:] for f in fields[1:] if f.startswith("revoked=")]
        keys[computed] = (name, raw[1:], when(revoked[0]) if revoked else None)
    return keys


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def ed25519_ok(key, message, signature):
    """OpenSSL's verdict on an Ed25519 signature."""
    with tempfile.TemporaryDirectory() as d:
        der = b"\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" + key
        files = {"key.der": der, "msg": message, "sig": signature}
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        run = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER",
             "-inkey", "key.der", "-rawin", "-in", "msg", "-sigfile", "sig"],
            cwd=d, capture_output=True)
        return run.returncode == 0


def signed_text(path, keys, at):
    """The text of a signed note when a trusted key signed it (not revoked by `at`)."""
    try:
        note = open(path, encoding="utf-8").read()
    except OSError as e:
        fail(path, f"missing ({e.strerror})")
        return None
    split = note.rfind("\n\n")
    if split < 0:
        fail(path, "not a signed note")
        return None
    text = note[: split + 1]
    for line in note[split + 2:].splitlines():
        if not line.startswith("\u2014 "):
            continue
        name, b64 = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(b64)
        key = keys.get(raw[:4])
        if key and key[0] == name and ed25519_ok(key[1], text.encode(), raw[4:]):
            if key[2] is not None and (at is None or at >= key[2]):
                fail(path, f"signed by key {name}, revoked {key[2].isoformat()}")
            return text
    fail(path, "no valid signature by a key of the verifier file")
    return None


def check_seal(folder, manifest, signature, keys, at):
    """A sealed folder: its note signs the manifest's and SHA256SUMS's SHA-256."""
    text = signed_text(os.path.join(folder, signature), keys, at)
    if text is None:
        return
    lines = text.splitlines()
    for name, line in ((manifest, 2), ("SHA256SUMS", 3)):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            fail(path, "missing")
            continue
        signed = lines[line].split(" ", 1)[1] if len(lines) > line else ""
        if sha256_file(path)[0] != signed:
            fail(path, "not the file the signature names")


def sums(folder):
    """SHA256SUMS as {path: sha256}, every path re-hashed: {path: (sha256, size)}."""
    listed, hashed = {}, {}
    try:
        lines = open(os.path.join(folder, "SHA256SUMS"), encoding="utf-8").read().splitlines()
    except OSError as e:
        fail(os.path.join(folder, "SHA256SUMS"), f"missing ({e.strerror})")
        return listed, hashed
    for line in lines:
        sha, _, path = line.partition("  ")
        if path.startswith("/") or ".." in path.split("/"):
            fail("SHA256SUMS", f"{path}: not a path inside the package")
            continue
        listed[path] = sha
        try:
            hashed[path] = sha256_file(os.path.join(folder, path))
        except OSError:
            fail(os.path.join(folder, path), "listed in SHA256SUMS but missing")
            continue
        if hashed[path][0] != sha:
            fail(os.path.join(folder, path), "its SHA-256 is not the one SHA256SUMS lists")
    return listed, hashed


H = lambda b: hashlib.sha256(b).digest()
node = lambda left, right: H(b"\x01" + left + right)


def included(index, size, leaf, path, root):
    if index >= size:
        return False
    f, s, r = index, size - 1, leaf
    for p in path:
        if s == 0:
            return False
        if f & 1 or f == s:
            r = node(p, r)
            while not f & 1 and f:
                f, s = f >> 1, s >> 1
        else:
            r = node(r, p)
        f, s = f >> 1, s >> 1
    return s == 0 and r == root


def consistent(m, n, old, new, proof):
    if m == n:
        return not proof and old == new
    if not proof or m == 0 or m > n:
        return False
    path = ([old] if m & (m - 1) == 0 else []) + proof
    f, s = m - 1, n - 1
    while f & 1:
        f, s = f >> 1, s >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if s == 0:
            return False
        if f & 1 or f == s:
            fr, sr = node(c, fr), node(c, sr)
            while not f & 1 and f:
                f, s = f >> 1, s >> 1
        else:
            sr = node(sr, c)
        f, s = f >> 1, s >> 1
    return fr == old and sr == new and s == 0


def main(keys_path, folder):
    keys = read_keys(keys_path)
    package = json.load(open(os.path.join(folder, "package.json"), "rb"))
    at = when(package["records_as_of"])
    check_seal(folder, "package.json", "package.json.sig", keys, at)
    listed, hashed = sums(folder)
    present = []
    for top, dirs, files in os.walk(folder):
        for name in files:
            present.append(os.path.relpath(os.path.join(top, name), folder).replace(os.sep, "/"))
    for path in present:
        if path not in listed and path not in ("SHA256SUMS", "package.json.sig"):
            fail(path, "in the folder but not in SHA256SUMS")

    head = package["checkpoint"]
    root = bytes.fromhex(head["root_hash"])
    text = signed_text(os.path.join(folder, "checkpoint.txt"), keys, at)
    expected = f"{head['origin']}\n{head['tree_size']}\n{base64.b64encode(root).decode()}\n"
    if text is not None and text != expected:
        fail("checkpoint.txt", "not the tree head package.json names")

    period = package["period"]
    start, end = when(period["from"]), when(period["to"])
    referenced = set()
    for run in package["runs"]:
        where = run["manifest"]
        try:
            data = open(os.path.join(folder, where), "rb").read()
        except OSError:
            fail(where, f"the manifest of run {run['run_id']} is missing")
            continue
        if hashlib.sha256(data).hexdigest() != run["manifest_sha256"]:
            fail(where, "not the manifest package.json names")
        path = [bytes.fromhex(p) for p in run["audit_path"]]
        if not included(run["leaf_index"], head["tree_size"], H(b"\x00" + data), path, root):
            fail(where, f"its audit path does not lead from leaf {run['leaf_index']} to the checkpoint's root")
        manifest = json.loads(data)
        finished = when(manifest["finished_at"])
        if manifest["run_id"] != run["run_id"] or not start <= finished < end:
            fail(where, f"run {manifest['run_id']} finished {manifest['finished_at']}, not in the period")
        for item in manifest["items"]:
            key = item["object_key"]
            referenced.add(key)
            if key not in hashed:
                fail(key, f"{item['name']} of run {run['run_id']} is not in the package")
            elif hashed[key] != (item["sha256"], item["size"]):
                fail(key, f"not {item['name']} of run {run['run_id']} (SHA-256 or size differ)")
    manifests = {run["manifest"] for run in package["runs"]}
    for path in present:
        if (path.startswith("objects/") and path not in referenced) or (
                path.startswith("runs/") and path not in manifests):
            fail(path, "no run of the period lists it")

    previous = package.get("previous")
    if previous:
        proof = [bytes.fromhex(p) for p in previous["proof"]]
        if not consistent(previous["tree_size"], head["tree_size"],
                          bytes.fromhex(previous["root_hash"]), root, proof):
            fail("package.json", "the checkpoint does not extend the previous export's")

    report = os.path.join(folder, "report")
    check_seal(report, "manifest.json", "manifest.json.sig", keys, at)
    sums(report)

    for f in failures:
        print("FAILED", f)
    print(f"{len(package['runs'])} runs, {len(referenced)} objects, {len(listed)} files: "
          + ("verified" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


def check_sample(keys_path, path):
    keys = read_keys(keys_path)
    sample = json.load(open(path, "rb"))
    items = sample["items"]
    ids = [i["id"] for i in items]
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        fail(path, "the items are not sorted by id, each once")
    h = hashlib.sha256()
    for i in items:
        h.update(f"{i['id']}\t{i['sha256']}\t{i['at']}\n".encode())
    if h.hexdigest() != sample["population_sha256"]:
        fail(path, "the population is not the one frozen (its hash differs)")
    frozen, seed = sample["frozen"], sample["seed"]
    event = json.loads(frozen["event"])
    d = event["details"]
    if (event["action"] != "sample-drawn" or d["population_sha256"] != sample["population_sha256"]
            or d["control"] != sample["control"] or d["population"] != sample["population"]
            or d["period"] != sample["period"]):
        fail(path, "the audit event does not freeze this population of this control and period")
    root = bytes.fromhex(seed["root_hash"])
    leaf = H(b"\x00" + frozen["event"].encode())
    path_hashes = [bytes.fromhex(p) for p in frozen["audit_path"]]
    if not included(frozen["leaf_index"], seed["tree_size"], leaf, path_hashes, root):
        fail(path, "the audit event is not in the tree whose root is the seed")
    with tempfile.TemporaryDirectory() as d:
        note = os.path.join(d, "checkpoint.txt")
        with open(note, "w", encoding="utf-8") as f:
            f.write(seed["checkpoint"])
        text = signed_text(note, keys, when(event["at"]))
    expected = f"{seed['origin']}\n{seed['tree_size']}\n{base64.b64encode(root).decode()}\n"
    if text is not None and text != expected:
        fail(path, "the checkpoint does not sign the seed's tree head")
    ranked = sorted((hashlib.sha256(root + i.encode()).hexdigest(), i) for i in ids)
    drawn = [{"rank": n + 1, "id": i, "selector": s}
             for n, (s, i) in enumerate(ranked[: sample["size"]])]
    if drawn != sample["selected"]:
        fail(path, "the selection is not the items with the lowest SHA-256(seed || id)")
    for f in failures:
        print("FAILED", f)
    print(f"sample {sample['id']}: {len(drawn)} of {len(items)} items: "
          + ("reproduced" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--sample":
        sys.exit(check_sample(sys.argv[1], sys.argv[3]))
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else here))
