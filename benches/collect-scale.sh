#!/bin/bash
# Collection at scale (issue 17): the release binary's `annexa collect` of one large file and of
# many small documents, local store + SQLite, page cache warm, each command timed by
# /usr/bin/time -v (wall, user+system CPU, peak RSS of the whole process, and what it read from
# disk: more than a few MB means the page cache was not warm after all); then `status` and
# `verify` over the store the largest run left. Given two counts or more, the smallest is
# collected three times more after the largest, and the cost per item of each and their ratio
# (CPU, and user CPU alone) are printed.
#
#   cargo build --release && benches/collect-scale.sh [DIR] [COUNTS]
#
# COUNTS is the document counts to collect, each into a store of its own ("10000 100000" by
# default; "10000 100000 1000000" for the million). With ANNEXA_BENCH_POSTGRES=URL (a server
# annexa may create databases on, e.g. `scripts/pg start DIR PORT`'s), the documents go into
# an s3s-fs server the script starts and a fresh PostgreSQL database instead, and the big file
# is skipped (ANNEXA_BENCH_BIG_MIB=0 skips it on the local store too). Documents are 10 KiB
# below a million and 1 KiB from a million; ANNEXA_BENCH_DOC_BYTES sets one size for all. DIR (default: a new temporary folder) must
# have room for the documents and their store: about 3 KiB a document and twice the big file.
# ANNEXA_BENCH_DAMON_OFF=1 keeps the page cache warm on a VM that pages it out (below).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/annexa"
dir=${1:-$(mktemp -d)}
counts=${2:-"10000 100000"}
big_mib=${ANNEXA_BENCH_BIG_MIB:-1024}
mkdir -p "$dir"

# Runs a command under /usr/bin/time; prints its wall, CPU, peak RSS and disk reads.
measure() {
  local label=$1; shift
  # Exit 3 is a gap (`status` of controls not satisfied), not a failure.
  local rc=0
  /usr/bin/time -v "$@" > "$dir/$label.out" 2> "$dir/$label.time" || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    echo "$label failed (exit $rc):"; tail -n 5 "$dir/$label.out" "$dir/$label.time"; exit 1
  fi
  awk -v label="$label" '
    /Elapsed \(wall clock\)/ { n = split($NF, p, ":"); wall = (n == 3) ? p[1]*3600 + p[2]*60 + p[3] : p[1]*60 + p[2] }
    /User time/ { cpu += $NF; user = $NF } /System time/ { cpu += $NF }
    /Maximum resident set size/ { rss = $NF / 1024 }
    /File system inputs/ { disk = $NF * 512 / 1e6 }
    END {
      printf "%-28s wall %8.2f s   cpu %8.2f s   peak RSS %7.1f MiB   read from disk %6.0f MB\n", label, wall, cpu, rss, disk
      printf "%s\t%s\t%s\t%s\n", label, wall, cpu, user >> results
    }
  ' results="$dir/results.tsv" "$dir/$label.time"
}

pg=${ANNEXA_BENCH_POSTGRES:-}
s3_port=$((19500 + $$ % 400))
s3_pid=
damon_off=()
cleanup() {
  if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null || true; fi
  for state in "${damon_off[@]}"; do echo on > "$state" || true; done
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret

# The [store] and [database] of a world at $1: local, or s3s-fs and a fresh database.
backend() {
  local w=$1
  if [ -z "$pg" ]; then
    printf '[store]\nkind = "fs"\npath = "data/store"\n\n[database]\nurl = "sqlite://data/annexa.db"\n'
    return
  fi
  [ -n "$s3_pid" ] && kill "$s3_pid" && wait "$s3_pid" 2>/dev/null || true
  mkdir -p "$w/s3/evidence"
  s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key bench --secret-key bench-secret "$w/s3" \
    > /dev/null 2>&1 &
  s3_pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; do sleep 0.05; done
  local db="bench_$(basename "$w" | tr -c 'a-z0-9\n' '_')_$$"
  psql "$pg" -qc "CREATE DATABASE $db" >&2
  # The URL holds a password: annexa takes it from the environment, never from the file.
  export ANNEXA_DATABASE__URL="${pg%/*}/$db"
  printf '[store]\nkind = "s3"\nendpoint = "http://127.0.0.1:%s"\nbucket = "evidence"\n' "$s3_port"
}

# A folder with one policy-document collector over `docs/`, a signing key and no schedule.
world() {
  local w=$1
  mkdir -p "$w/docs"
  backend "$w" > "$w/backend.toml" # not in $(…): s3s-fs must be this shell's child
  cat > "$w/annexa.toml" <<EOF
[organization]
name = "Bench Org"

$(cat "$w/backend.toml")

[[collector]]
name = "archive"
kind = "policy-document"
paths = ["docs"]
max_file_size_mib = $((big_mib + 64))
EOF
  (cd "$w" && "$bin" keys generate >/dev/null 2>&1 || true)
}

echo "annexa collect-scale bench, $(nproc) cores, $(date -u +%FT%TZ)"
: > "$dir/results.tsv"
# ext4 without a journal (this VM's root) will not reuse an inode freed in the last 60 s, or
# 360 s while its inode-table block is dirty: each new file scans past every such inode, so a
# run timed just after many files were removed pays for it (a 10,000-document collect took 4 s
# of system CPU instead of 0.5). No timed run here follows a removal within that window: an
# earlier run's worlds are removed first, then the bench waits, and every run after the first
# goes into a store of its own.
old=$(find "$dir" -mindepth 1 -maxdepth 1 \( -name big -o -name 'docs-*' \) | wc -l)
if [ "$old" -gt 0 ]; then
  find "$dir" -mindepth 1 -maxdepth 1 \( -name big -o -name 'docs-*' \) -exec rm -rf {} +
  sync
  echo "removed an earlier run's worlds; waiting 6 minutes until ext4 may reuse their inodes"
  sleep 370
fi
# A VM's DAMON page-out reclaims page cache idle for a while, even with memory free: then the
# documents of a long run are not warm, and part of its cost is reading them back from disk.
# ANNEXA_BENCH_DAMON_OFF=1 (root) switches it off for the bench and on again at its end.
for state in /sys/kernel/mm/damon/admin/kdamonds/*/state; do
  if [ -r "$state" ] && [ "$(cat "$state")" = on ]; then
    if [ "${ANNEXA_BENCH_DAMON_OFF:-}" = 1 ] && echo off > "$state"; then
      damon_off+=("$state")
      echo "note: DAMON switched off for the bench ($state)"
    else
      echo "note: DAMON is on ($state); idle page cache may be paged out during a long run"
    fi
  fi
done

# One large file.
[ -n "$pg" ] && big_mib=0
if [ "$big_mib" -gt 0 ]; then
w="$dir/big"; world "$w"
python3 - "$w/docs/archive.txt" "$big_mib" <<'EOF'
import sys
line = b"Document ID: ARCHIVE-1 Owner: Records Version: 1 Last reviewed: 2026-11-01 Controls: A.5.24\n"
block = (line + bytes(range(32, 127)) * 40 + b"\n") * 256
with open(sys.argv[1], "wb") as f:
    left = int(sys.argv[2]) * 1024 * 1024
    while left > 0:
        f.write(block[:left]); left -= len(block)
EOF
cat "$w/docs/archive.txt" > /dev/null
measure "sha256sum ${big_mib} MiB" sha256sum "$w/docs/archive.txt"
measure "collect ${big_mib} MiB file" "$bin" --config "$w/annexa.toml" collect archive
fi

# Collects the documents of world $2, read once just before (page cache warm), timed as $1.
collect_docs() {
  find "$2/docs" -type f -exec cat {} + > /dev/null
  measure "$1" "$bin" --config "$2/annexa.toml" collect archive
}

# Many small documents (10 KiB below 1M, 1 KiB at 1M).
for n in $counts; do
  size=10240; [ "$n" -ge 1000000 ] && size=1024
  [ -n "${ANNEXA_BENCH_DOC_BYTES:-}" ] && size=$ANNEXA_BENCH_DOC_BYTES
  w="$dir/docs-$n"; world "$w"
  python3 - "$w/docs" "$n" "$size" <<'EOF'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
filler = (bytes(range(48, 123)) * (size // 75 + 1))
for i in range(n):
    sub = os.path.join(root, f"{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    head = (f"# Record {i}\nDocument ID: REC-{i:07d}\nOwner: Records\nVersion: 1\n"
            f"Last reviewed: 2026-{1 + i % 11:02d}-15\nControls: A.5.33\n\n").encode()
    with open(os.path.join(sub, f"rec-{i:07d}.md"), "wb") as f:
        f.write((head + filler)[:size])
EOF
  collect_docs "collect $n docs" "$w"
  last=$w
done

# Cost per item at the largest count against the smallest: the smallest is collected three
# times more right after the largest (each into a store of its own), so that some of its runs see
# the machine as the largest left it. Like with like only when the documents are one size
# (ANNEXA_BENCH_DOC_BYTES). Local store only: on S3 the smallest's server is stopped by now.
small=$(printf '%s\n' $counts | sort -n | head -1); large=$(printf '%s\n' $counts | sort -n | tail -1)
if [ -z "$pg" ] && [ "$small" != "$large" ]; then
  w="$dir/docs-$small"
  for i in 1 2 3; do
    ANNEXA_STORE__PATH="data/store-again-$i" ANNEXA_DATABASE__URL="sqlite://data/again-$i.db" \
      collect_docs "collect $small docs, again $i" "$w"
  done
  # Median of the smallest's runs (mawk has no sort: sort does it).
  median() { grep -P "^collect $small docs(, again \d)?\t" "$dir/results.tsv" | cut -f"$1" | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  awk -F'\t' -v small="$small" -v large="$large" -v scpu="$(median 3)" -v suser="$(median 4)" '
    $1 == "collect " large " docs" { lcpu = $3 / large; luser = $4 / large }
    END {
      printf "cost per item: %d docs %.4f ms cpu (%.4f user), median of 4 runs; %d docs %.4f ms cpu (%.4f user)\n", small, scpu / small * 1000, suser / small * 1000, large, lcpu * 1000, luser * 1000
      printf "ratio, %d to %d: cpu %.2fx, user cpu %.2fx\n", large, small, lcpu / (scpu / small), luser / (suser / small)
    }' "$dir/results.tsv"
fi

measure "status after $(basename "$last")" "$bin" --config "$last/annexa.toml" status --json
# Verify reads every object: warm the page cache with them first, timing `cat` of them all as
# the floor the filesystem sets.
store_dir="$last/data/store/objects"; [ -n "$pg" ] && store_dir="$last/s3/evidence/objects"
measure "cat of every object" sh -c "find '$store_dir' -type f -print0 | xargs -0 cat > /dev/null"
measure "verify after $(basename "$last")" "$bin" --config "$last/annexa.toml" verify
objects=$( (find "$last/data/store/objects" "$last/s3/evidence/objects" -type f 2>/dev/null || true) | wc -l)
echo "objects in that store: $objects"
echo "results and outputs in $dir"
