"""What the multi-host tests do on the client host: `python multihost_client.py ACTION ARGS...`.

Runs inside the client's network namespace (the test process cannot reach the lab's private
addresses from the machine's own namespace). Each action prints one JSON document on stdout;
`watch` prints a line per event and its JSON last. Every wait here is bounded.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3


def s3() -> Any:
    return boto3.client("s3")  # endpoint and credentials from the AWS_* environment


def wait_port(host: str, port: str, timeout: str) -> dict[str, Any]:
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return {"open": True}
        except OSError:
            if time.monotonic() > deadline:
                return {"open": False}
            time.sleep(0.1)


def upload(bucket: str, prefix: str, folder: str) -> dict[str, Any]:
    """A versioned bucket holding every file under `folder`, and an empty versioned one."""
    client = s3()
    for name in (bucket, f"{bucket}-out"):
        client.create_bucket(Bucket=name)
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
    return {"uploaded": len(files)}


def versions(bucket: str) -> dict[str, Any]:
    """How many versions (writes) each key of `bucket` has, and the delete markers."""
    counts: dict[str, int] = {}
    markers = 0
    for page in s3().get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
        markers += len(page.get("DeleteMarkers", []))
    return {"versions": counts, "delete_markers": markers}


def wait_workers(scheduler: str, timeout: str, present: str, *names: str) -> dict[str, Any]:
    """Until the workers `names` are all in the scheduler (present="1") or all gone ("0")."""
    from distributed import Client

    deadline = time.monotonic() + float(timeout)
    with Client(scheduler, timeout=10) as client:
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            found = {str(w["name"]) for w in workers}
            wanted = set(names) <= found if present == "1" else not set(names) & found
            if wanted or time.monotonic() > deadline:
                return {"names": sorted(found), "done": wanted}
            time.sleep(0.2)


def api_run(source: str, target: str, scheduler: str) -> dict[str, Any]:
    """The Python API on the client host: pipeline.run(s3://..., s3://..., scheduler=...)."""
    import pipeline

    report = pipeline.run(source, target, scheduler=scheduler, max_size=128)
    return {"summary": report.summary(), "files": list(report.records or [])}


def probe(scheduler: str, path: str) -> dict[str, Any]:
    """Per worker: whether `path` (a client-side file) exists there, and its /tmp listing."""
    from distributed import Client

    def look(target: str) -> dict[str, Any]:
        import os

        return {"exists": os.path.exists(target), "tmp": sorted(os.listdir("/tmp"))}

    with Client(scheduler, timeout=10) as client:
        return {"workers": client.run(look, path)}


def get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return {"status": response.status, "body": response.read().decode(errors="replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": ""}


def watch(scheduler: str, bucket: str, target: str, timeout: str) -> dict[str, Any]:
    """Follow a run until stdin closes: print `ready N` once an output exists and worker
    `target` (a name, or "-" for any) has N > 0 tasks; record which workers ever had tasks, and
    when (wall clock) `target` left the scheduler."""
    from distributed import Client

    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    busy: set[str] = set()
    ready_at = gone_at = None
    present = False  # the target was seen in the scheduler
    deadline = time.monotonic() + float(timeout)
    with Client(scheduler, timeout=10) as client:
        while not done.is_set() and time.monotonic() < deadline:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            names = {addr: str(info["name"]) for addr, info in workers.items()}
            tasks = {names.get(a, a): len(keys) for a, keys in client.processing().items() if keys}
            busy.update(tasks)
            if ready_at is None and (target == "-" or tasks.get(target)) and _outputs(bucket):
                ready_at = time.time()
                print(f"ready {tasks.get(target, 0)}", flush=True)
            if target in names.values():
                present = True
            elif present and gone_at is None:
                gone_at = time.time()
            time.sleep(0.1)
    return {"busy": sorted(busy), "ready_at": ready_at, "gone_at": gone_at}


def _outputs(bucket: str) -> bool:
    return bool(s3().list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount"))


ACTIONS = {
    "wait-port": wait_port,
    "upload": upload,
    "versions": versions,
    "wait-workers": wait_workers,
    "api-run": api_run,
    "probe": probe,
    "get": get,
    "watch": watch,
}

if __name__ == "__main__":
    print(json.dumps(ACTIONS[sys.argv[1]](*sys.argv[2:])), flush=True)
