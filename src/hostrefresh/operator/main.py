"""``hostrefresh-operator``: run the kopf operator (HostRefresh lifecycle, RefreshPlan rollouts)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostrefresh-operator", description=__doc__)
    parser.parse_args(argv)
    parser.error("the operator is not implemented yet")
    return 2
