#!/usr/bin/env python3
"""The quickstart's incident register as it stood at a moment, for a simulated month.

    register-at.py QUICKSTART DIR TIME

writes DIR/incidents/register.csv with the incidents of QUICKSTART's register detected by TIME
(RFC 3339), each with only the steps of its lifecycle that had happened by then (a later time
is an empty cell, the status follows), and copies into DIR/incidents/postmortems the
post-mortems written by then.
"""
import csv
import datetime
import pathlib
import shutil
import sys

source, target, at = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
now = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))


def happened(cell):
    return bool(cell) and datetime.datetime.fromisoformat(cell) <= now


with open(source / "incidents/register.csv", newline="") as f:
    rows = list(csv.DictReader(f))
steps = ["triaged_at", "contained_at", "resolved_at", "closed_at", "postmortem_at",
         "authority_notified_at", "customers_notified_at"]
kept = []
for row in rows:
    if not happened(row["detected_at"]):
        continue
    for step in steps:
        if not happened(row[step]):
            row[step] = ""
    if not row["postmortem_at"]:
        row["postmortem"] = ""
    row["status"] = "closed" if row["closed_at"] else "resolved" if row["resolved_at"] else "open"
    kept.append(row)
(target / "incidents/postmortems").mkdir(parents=True, exist_ok=True)
with open(target / "incidents/register.csv", "w", newline="") as f:
    out = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
    out.writeheader()
    out.writerows(kept)
for row in kept:
    if row["postmortem"]:
        shutil.copy(source / "incidents/postmortems" / row["postmortem"],
                    target / "incidents/postmortems" / row["postmortem"])
