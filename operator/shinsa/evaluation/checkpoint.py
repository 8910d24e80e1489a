"""Append-only record of finished work, so a restarted run repeats no completed request.

Every successful generation and judgment is appended as one JSON line keyed by (kind, benchmark,
question, turn, repeat, judge) plus a fingerprint of the settings that produced it. A resumed run
reuses a record only when its fingerprint matches the current settings: changing the model, the
sampling, the dataset or a judge's prompt makes old records stale instead of silently reused.
Failures are not recorded here; a resumed run tries them again.

Local checkpoints are a directory with `records.jsonl`, written line by line and flushed, so a
killed process loses at most the line being written (a torn last line is skipped on load). S3
checkpoints buffer lines and upload them as numbered part objects on every `flush()`; a killed run
loses what was completed since the last flush (a run stopped with SIGTERM flushes first).

`--no-resume` never deletes records: a local `records.jsonl` is renamed to
`records.<time>.jsonl.old`, and S3 parts are moved under the sibling prefix `<prefix>.old-<time>/`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

RecordKey = tuple[str, str, str, int, int, str, str]
_RECORDS = "records.jsonl"


def record_key(record: dict[str, Any]) -> RecordKey:
    return (
        str(record["kind"]),
        str(record["benchmark"]),
        str(record["question_id"]),
        int(record["turn"]),
        int(record["repeat"]),
        str(record.get("judge") or ""),
        str(record.get("fingerprint") or ""),
    )


class _Store(Protocol):
    def load(self) -> Iterator[str]: ...
    def append(self, line: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class _LocalStore:
    def __init__(self, directory: Path, resume: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / _RECORDS
        if not resume and self.path.exists():
            # Keep the old records next to it rather than deleting results someone paid for.
            self.path.rename(directory / f"records.{time.strftime('%Y%m%d-%H%M%S')}.jsonl.old")
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            if torn:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("\n")
        self._handle = self.path.open("a", encoding="utf-8")

    def load(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8") as handle:
            yield from handle

    def append(self, line: str) -> None:
        self._handle.write(line + "\n")
        self._handle.flush()

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class _S3Store:
    def __init__(self, bucket: str, prefix: str, resume: bool) -> None:
        import boto3

        self._client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._session = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0
        self._pending: list[str] = []
        # The periodic flush runs in a worker thread while the event loop appends, and a final flush
        # on stop may overlap with it: the buffer and the part numbering are guarded separately, so
        # appending never waits for an upload.
        self._buffer = threading.Lock()
        self._flushing = threading.Lock()
        if not resume:
            self._set_aside(time.strftime("%Y%m%d-%H%M%S"))

    def _set_aside(self, stamp: str) -> None:
        """Move the existing parts under the sibling prefix `<prefix>.old-<stamp>/`, as a local
        checkpoint keeps its old file: the records are results someone paid for."""
        keys = self._part_keys()
        aside = f"{self.prefix.rstrip('/')}.old-{stamp}/" if self.prefix else f"old-{stamp}/"
        for key in keys:
            target = aside + key.removeprefix(self.prefix)
            self._client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key}
            )
        # Deleted only once every copy exists, so a failure part-way loses nothing.
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def _part_keys(self) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "records-"):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def load(self) -> Iterator[str]:
        for key in self._part_keys():
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
            yield from body.splitlines()

    def append(self, line: str) -> None:
        with self._buffer:
            self._pending.append(line)

    def flush(self) -> None:
        with self._flushing:
            with self._buffer:
                lines, self._pending = self._pending, []
            if not lines:
                return
            key = f"{self.prefix}records-{self._session}-{self._sequence:06d}.jsonl"
            self._sequence += 1
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body="\n".join(lines).encode() + b"\n")
            except Exception:
                with self._buffer:
                    self._pending = lines + self._pending
                raise

    def close(self) -> None:
        self.flush()


class Checkpoint:
    """Finished generations and judgments, loaded from and appended to a store."""

    def __init__(self, store: _Store) -> None:
        self._store = store
        self._records: dict[RecordKey, dict[str, Any]] = {}
        self.skipped_lines = 0
        for line in store.load():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._records[record_key(record)] = record
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1
        self.loaded = len(self._records)

    @classmethod
    def open(cls, uri: str, *, resume: bool = True) -> Checkpoint:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            return cls(_S3Store(parsed.netloc, parsed.path, resume))
        path = Path(parsed.path) if parsed.scheme == "file" else Path(uri)
        return cls(_LocalStore(path, resume))

    @property
    def is_remote(self) -> bool:
        return isinstance(self._store, _S3Store)

    def get(
        self,
        kind: str,
        benchmark: str,
        question_id: str,
        turn: int,
        repeat: int,
        judge: str,
        fingerprint: str,
    ) -> dict[str, Any] | None:
        return self._records.get((kind, benchmark, question_id, turn, repeat, judge, fingerprint))

    def put(self, record: dict[str, Any]) -> None:
        key = record_key(record)
        self._records[key] = record
        self._store.append(json.dumps(record, ensure_ascii=False, sort_keys=True))

    def flush(self) -> None:
        self._store.flush()

    def close(self) -> None:
        self._store.close()

    def __len__(self) -> int:
        return len(self._records)
