#!/usr/bin/env python3
"""What an S3 server costs a verify, without annexa: a full listing of the bucket's objects/
prefix (pages of 1,000, each page timed), then GETs + SHA-256 of up to 3,000 of its keys, one
at a time and 32 at once. Used for BENCHMARKS.md's "S3 at 100,000 again": start s3s-fs on a
bucket collect-scale.sh left, then

    s3s-fs --host 127.0.0.1 --port 19999 --access-key bench --secret-key bench-secret DIR/docs-N/s3 &
    python3 benches/s3-listing.py 19999
"""
import concurrent.futures
import hashlib
import sys
import time

import boto3
from botocore.config import Config

port = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="bench",
                  aws_secret_access_key="bench-secret", region_name="us-east-1",
                  config=Config(max_pool_connections=64))

start = last = time.time()
keys, pages = [], []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="evidence", Prefix="objects/"):
    now = time.time()
    pages.append(now - last)
    last = now
    keys += [o["Key"] for o in page.get("Contents", [])]
print(f"listed {len(keys)} keys in {time.time() - start:.2f} s over {len(pages)} pages; "
      f"a page took {min(pages):.3f}-{max(pages):.3f} s")


def get(key):
    body = s3.get_object(Bucket="evidence", Key=key)["Body"].read()
    hashlib.sha256(body).hexdigest()


sample = keys[:: max(1, len(keys) // 3000)][:3000]
for threads, n in ((1, 200), (32, len(sample))):
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(get, sample[:n]))
    took = time.time() - start
    print(f"{n} GETs + SHA-256 with {threads} thread(s): {took:.2f} s, {n / took:.0f} a second")
