#!/usr/bin/env python3
"""compare_shards.py A B: two shards folders hold the same records, byte for byte (python3-lmdb).

Splits, sample counts and every record's bytes (CRC included) must be equal; how the samples are cut into
files may differ (a resumed run, another --part-samples). The manifests must agree on everything but the
file lists. Prints one line; exits 1 on the first difference, naming split and sample.
"""
import json
import os
import sys

import lmdb


def records(folder, split, files):
    for name in files:
        env = lmdb.open(os.path.join(folder, name), subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            for key, value in txn.cursor():
                yield int.from_bytes(key, "big"), bytes(value)
        env.close()


def main():
    a, b = sys.argv[1], sys.argv[2]
    ma = json.load(open(os.path.join(a, "manifest.json")))
    mb = json.load(open(os.path.join(b, "manifest.json")))
    n = 0
    for split in ma["splits"]:
        ra = list(records(a, split, ma["splits"][split]["shards"]))
        rb = list(records(b, split, mb["splits"][split]["shards"]))
        if len(ra) != len(rb):
            sys.exit(f"split {split}: {len(ra)} records in {a}, {len(rb)} in {b}")
        for (ka, va), (kb, vb) in zip(ra, rb):
            if ka != kb or va != vb:
                sys.exit(f"split {split} sample {ka}: records differ ({len(va)} vs {len(vb)} bytes)")
        n += len(ra)
    for m in (ma, mb):
        for s in m["splits"].values():
            s.pop("shards")
        for k in ("data_dir", "json_file"):
            m["source"].pop(k, None)
    if ma != mb:
        keys = [k for k in ma if ma.get(k) != mb.get(k)]
        sys.exit(f"manifests differ in {keys}")
    print(f"compare: {n} records identical, manifests agree")


if __name__ == "__main__":
    main()
