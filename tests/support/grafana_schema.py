"""Grafana's own dashboard schema (npm @grafana/schema, its TypeScript types) as a type check of a
dashboard's JSON: `tsc --noEmit --strict` on `const d: Dashboard = <json>` refuses unknown keys and
wrong types. The packages are pinned by grafana_schema/package-lock.json and installed with
`npm ci` into the user cache, keyed by the lock's digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LOCK_DIR = Path(__file__).resolve().parent / "grafana_schema"


def install_dir() -> Path:
    """node_modules for the pinned lock, installed on first use (about 3 s and 33 MB)."""
    lock = (LOCK_DIR / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shinsa" / "grafana-schema"
    target = cache / hashlib.sha256(lock).hexdigest()[:16]
    if (target / "node_modules" / ".bin" / "tsc").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache))
    for name in ("package.json", "package-lock.json"):
        shutil.copy(LOCK_DIR / name, staging / name)
    # No install scripts: typescript 7 ships its compiler as a per-platform optional package.
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=staging,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # last, so an interrupted install never looks like a finished one
    return target


def type_check(dashboard_json: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """tsc's verdict on the dashboard as a @grafana/schema `Dashboard`."""
    root = install_dir()
    source = workdir / "dashboard.ts"
    source.write_text(
        'import type { Dashboard } from "@grafana/schema";\n'
        f"export const dashboard: Dashboard = {dashboard_json};\n"
    )
    # Resolved from the install's node_modules: tsc looks upwards from the file, so link it in.
    link = workdir / "node_modules"
    if not link.exists():
        link.symlink_to(root / "node_modules")
    return subprocess.run(
        [
            str(root / "node_modules" / ".bin" / "tsc"),
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            str(source),
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
