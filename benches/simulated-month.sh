#!/bin/bash
# A simulated month as cron runs it: the quickstart with every collector hourly (policies :05,
# incidents :10, backups :15, cron-health :30), `annexa run` at :59 of every hour of November
# 2026 and the db-backup job's heartbeat at :01, except on the 12th (a job down for a day); the
# incident register (the quickstart's) grows and moves through its incidents' lifecycles as
# the month goes (benches/register-at.py).
# Then it prints what the month costs: the report (wall time, peak RSS of the whole process,
# file sizes, A4 pages as headless Chromium prints report.html) and `status` over the period.
#
#   cargo build --release && benches/simulated-month.sh [DIR]    # about 6 minutes
#
# A DIR that already holds a simulated month is measured again without simulating it anew.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/annexa"
dir=${1:-$(mktemp -d)}
epoch=$(date +%s%3N)
at() { echo "$1,0.000000001,$epoch"; }
if [ ! -f "$dir/data/annexa.db" ]; then
  rm -rf "$dir" && cp -r "$root/examples/quickstart" "$dir" && cd "$dir"
  rm -rf incidents/postmortems/*
  sed -i 's/^schedule = "0 3 \* \* \*"/schedule = "5 * * * *"/; s/^schedule = "0 6 \* \* \*"/schedule = "10 * * * *"/' annexa.toml
  start=$(date +%s)
  for d in $(seq -w 1 30); do
    for h in $(seq -w 0 23); do
      [ "$d" = 12 ] || ANNEXA_SIMULATED_CLOCK=$(at "2026-11-${d}T${h}:01:00Z") "$bin" ping db-backup >/dev/null 2>&1
      python3 "$root/benches/register-at.py" "$root/examples/quickstart" . "2026-11-${d}T${h}:59:00Z"
      ANNEXA_SIMULATED_CLOCK=$(at "2026-11-${d}T${h}:59:00Z") "$bin" run >/dev/null 2>&1 || true
    done
  done
  echo "simulated in $(( $(date +%s) - start )) s"
fi
cd "$dir"
echo "month: $(sqlite3 data/annexa.db 'select count(*) from runs') runs, $(sqlite3 data/annexa.db 'select count(*) from findings') findings recorded"
rm -rf rep
export ANNEXA_SIMULATED_CLOCK=$(at 2026-12-01T01:00:00Z)
/usr/bin/time -f "report: %e s, peak RSS %M KiB" "$bin" report --out rep 2>&1 >/dev/null | grep '^report:' || true
/usr/bin/time -f "status --from --to: %e s, peak RSS %M KiB" "$bin" status --json --from 2026-11-01 --to 2026-11-30 2>&1 >/dev/null | grep '^status' || true
/usr/bin/time -f "status: %e s, peak RSS %M KiB" "$bin" status --json 2>&1 >/dev/null | grep '^status' || true
bundle=$(ls -d rep/*/)
(cd "$bundle" && ls -l | awk 'NR > 1 {printf "  %-32s %10d bytes\n", $9, $5}')
chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer \
  --print-to-pdf="$dir/report.pdf" "file://$dir/$bundle/report.html" >/dev/null 2>&1
echo "report.html printed: $(pdfinfo "$dir/report.pdf" | awk '/^Pages:/ {print $2}') A4 pages"
