"""docs/costs.md is what bench/costs.py makes of bench/results (regenerate it when results change)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_costs_page_is_current() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "costs.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_costs_page_links_its_plots() -> None:
    text = (ROOT / "docs" / "costs.md").read_text()
    for name in ("costs-handover.png", "costs-api-requests.png"):
        assert f"img/{name}" in text
        assert (ROOT / "docs" / "img" / name).read_bytes()[:4] == b"\x89PNG"
