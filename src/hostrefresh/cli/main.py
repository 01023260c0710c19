"""``kubectl hostrefresh``: start, watch and abort host refreshes."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubectl-hostrefresh", description=__doc__)
    parser.parse_args(argv)
    parser.print_help()
    return 0
