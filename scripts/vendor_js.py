"""
Re-fetch the browser libraries the UI serves from ``src/flowtime/ui/static/vendor/`` (decision 0040).

    python scripts/vendor_js.py            # download, verify, write every pinned file
    python scripts/vendor_js.py --check    # verify the files in the tree against their pins (no network)

The pins live in ``static/vendor/vendored.json``: per library the npm package, its version, the registry
tarball and its ``integrity`` (the SRI hash npm publishes), and per extracted file where it goes and its
sha256. A download whose integrity or a file whose sha256 differs from the pin is refused and nothing is
written, so a tampered or re-published tarball cannot slip in. To move to a new version, change the pins
(``npm view <package>@<version> dist.tarball dist.integrity``), run without ``--check`` once with
``--print-hashes`` to see the new files' sha256, review the diff, then pin those.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx

VENDOR = Path(__file__).resolve().parent.parent / "src" / "flowtime" / "ui" / "static" / "vendor"
PINS = VENDOR / "vendored.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_integrity(data: bytes, integrity: str) -> None:
    """``integrity`` is npm's ``<algorithm>-<base64 digest>``; the tarball must match it."""
    algorithm, _, digest = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != digest:
        raise SystemExit(f"tarball integrity mismatch: pinned {integrity}, got {algorithm}-{got}")


def extract(data: bytes, members: dict[str, Any], *, verify: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name, pin in members.items():
            member = tar.extractfile(name)
            if member is None:
                raise SystemExit(f"{name} is not a file in the tarball")
            content = member.read()
            if verify and sha256(content) != pin["sha256"]:
                raise SystemExit(f"{name}: sha256 {sha256(content)} differs from the pinned {pin['sha256']}")
            out[pin["to"]] = content
    return out


def fetch(lib: str, spec: dict[str, Any], *, verify: bool) -> dict[str, bytes]:
    resp = httpx.get(spec["tarball"], follow_redirects=True, timeout=60)
    resp.raise_for_status()
    check_integrity(resp.content, spec["integrity"])
    print(f"{lib}: {spec['package']}@{spec['version']} tarball verified ({spec['integrity'][:20]}...)")  # noqa: T201
    return extract(resp.content, spec["files"], verify=verify)


def check_tree(pins: dict[str, Any]) -> list[str]:
    """The vendored files that are missing or differ from their pins."""
    bad = []
    for spec in pins.values():
        for pin in spec["files"].values():
            path = VENDOR / pin["to"]
            if not path.is_file() or sha256(path.read_bytes()) != pin["sha256"]:
                bad.append(pin["to"])
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify the vendored files only (no network)")
    parser.add_argument("--print-hashes", action="store_true",
                        help="print the downloaded files' sha256 instead of checking and writing them")
    args = parser.parse_args()
    pins: dict[str, Any] = json.loads(PINS.read_text())
    if args.check:
        bad = check_tree(pins)
        for name in bad:
            print(f"differs from its pin: {name}")  # noqa: T201
        sys.exit(1 if bad else 0)
    for lib, spec in pins.items():
        files = fetch(lib, spec, verify=not args.print_hashes)
        for to, content in files.items():
            if args.print_hashes:
                print(f"  {to}  {sha256(content)}")  # noqa: T201
                continue
            dest = VENDOR / to
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
            print(f"  wrote {dest.relative_to(VENDOR.parent.parent.parent.parent.parent)}")  # noqa: T201


if __name__ == "__main__":
    main()
