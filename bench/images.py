"""The sizes of the operator and agent images, as `make images` builds them, recorded with provenance.

Size: Docker's ``Size`` of the image (``docker image inspect``), the uncompressed bytes of all its
layers, base included: what a node stores once it pulled the image. A registry serves it compressed,
so a pull transfers less.

    python bench/images.py                       # the images of this checkout (deploy/images/tag.sh)
    python bench/images.py --tag 0.1.0-gabc123   # images built earlier, by their immutable tag

Appends one entry per tag to bench/results/images.json; the file's provenance (bench/provenance.py)
is that of the latest run, and each entry keeps its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from provenance import provenance

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "images.json"
DEFINITION = (
    "Docker's Size of each image (docker image inspect): the uncompressed bytes of all its layers, base "
    "included, as a node stores it; MB = 10^6 bytes, as docker images prints"
)
MACHINE = "the project's 2-core x86_64 VM, 24 GiB, Debian 12"


def inspect(image: str) -> dict[str, object]:
    """Size and OCI labels of one local image."""
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"no local image {image}: build it first (make images): {out.stderr.strip()}")
    (info,) = json.loads(out.stdout)
    labels = (info.get("Config") or {}).get("Labels") or {}
    return {
        "bytes": info["Size"],
        "mb": round(info["Size"] / 1e6),
        "revision": labels.get("org.opencontainers.image.revision"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tag", action="append", help="immutable tag to measure (repeatable; default: this checkout's)"
    )
    args = parser.parse_args(argv)
    tags = args.tag or [
        subprocess.run(
            ["bash", "deploy/images/tag.sh"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    ]
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"definition": DEFINITION, "runs": []}
    doc["definition"] = DEFINITION
    prov = provenance()
    doc["provenance"] = prov
    for tag in tags:
        images = {name: inspect(f"hostrefresh-{name}:{tag}") for name in ("operator", "agent")}
        named = re.search(r"-g([0-9a-f]{7,40})", tag)
        entry = {
            "tag": tag,
            "commit": images["operator"]["revision"] or (named.group(1) if named else None),
            "date": datetime.now(UTC).date().isoformat(),
            "machine": f"{MACHINE} ({platform.machine()})",
            "command": "python bench/images.py " + " ".join(sys.argv[1:]),
            "provenance": prov,
            "images": images,
        }
        doc["runs"].append(entry)
        print(f"{tag}: operator {images['operator']['mb']} MB, agent {images['agent']['mb']} MB")
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
