"""``hostrefresh-agent``: the node agent that executes the node-local refresh steps."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostrefresh-agent", description=__doc__)
    parser.parse_args(argv)
    parser.error("the node agent is not implemented yet")
    return 2
