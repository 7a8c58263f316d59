"""Computes the daily summaries independently, with pandas, from the readings
as they were sent (argv[1], JSON Lines), and compares them with the daily
aggregator's output directory (argv[2]): every <day>.parquet and <day>.jsonl.

Prints one JSON object: the number of (day, station) groups and the problems
found (empty when both outputs equal the independent summaries)."""

import json
import math
import sys
from pathlib import Path

import pandas as pd

KEYS = ("station_id", "station_name", "timestamp")


def station_key(frame):
    name = frame["station_name"] if "station_name" in frame else pd.Series([None] * len(frame))
    usable = name.notna() & (name.astype(str).str.strip() != "")
    return name.where(usable, frame["station_id"].astype(str))


def close(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def main():
    messages = pd.read_json(sys.argv[1], lines=True, dtype=False, convert_dates=False)
    out = Path(sys.argv[2])
    stamps = pd.to_datetime(messages["timestamp"], utc=True, format="ISO8601")
    messages["_day"] = stamps.dt.strftime("%Y-%m-%d")
    messages["_at"] = stamps
    messages["_station"] = station_key(messages)
    fields = [
        c
        for c in messages.columns
        if c not in KEYS and not c.startswith("_") and pd.api.types.is_numeric_dtype(messages[c])
    ]

    expected = {}
    for (day, station), group in messages.groupby(["_day", "_station"]):
        row = {
            "readings": len(group),
            "first": group["_at"].min(),
            "last": group["_at"].max(),
        }
        for field in fields:
            values = group[field].dropna()
            row[field] = (len(values), values.min(), values.max(), values.mean()) if len(values) else (0, None, None, None)
        expected[(day, station)] = row

    problems = []
    parquet = [pd.read_parquet(f) for f in sorted(out.glob("*.parquet"))]
    lines = [pd.read_json(f, lines=True, dtype=False, convert_dates=False) for f in sorted(out.glob("*.jsonl"))]
    if not parquet or len(parquet) != len(lines):
        problems.append(f"{len(parquet)} Parquet files and {len(lines)} JSON Lines files")
        print(json.dumps({"groups": len(expected), "problems": problems}))
        return
    for kind, frames in (("parquet", parquet), ("jsonl", lines)):
        ours = pd.concat(frames, ignore_index=True)
        ours["_station"] = station_key(ours)
        got = {}
        for _, row in ours.iterrows():
            key = (row["date"], row["_station"])
            if key in got:
                problems.append(f"{kind}: {key} twice")
            got[key] = row
        if set(got) != set(expected):
            missing = sorted(set(expected) - set(got))[:5]
            extra = sorted(set(got) - set(expected))[:5]
            problems.append(f"{kind}: groups differ; missing {missing}, extra {extra}")
            continue
        for key, want in expected.items():
            row = got[key]
            if int(row["readings"]) != want["readings"]:
                problems.append(f"{kind} {key}: readings {row['readings']} != {want['readings']}")
            for end in ("first", "last"):
                value = pd.Timestamp(row[f"{end}_timestamp"])
                value = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
                if value != want[end]:
                    problems.append(f"{kind} {key}: {end}_timestamp {value} != {want[end]}")
            for field in fields:
                count, low, high, mean = want[field]
                got_count = row.get(f"{field}_count")
                got_count = 0 if got_count is None or (isinstance(got_count, float) and math.isnan(got_count)) else int(got_count)
                if got_count != count:
                    problems.append(f"{kind} {key}: {field}_count {got_count} != {count}")
                for name, value in (("min", low), ("max", high), ("mean", mean)):
                    if not close(row.get(f"{field}_{name}"), value):
                        problems.append(f"{kind} {key}: {field}_{name} {row.get(f'{field}_{name}')} != {value}")
    print(json.dumps({"groups": len(expected), "problems": problems[:20]}))


main()
