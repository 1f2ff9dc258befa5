"""Issue 6's overheads in one run: an MCP ``tools/call`` through toolrun over a direct call of
the same tool (:mod:`bench.mcp`), and a code action's inner call and a chain's step over a
plain ``invoke`` (:mod:`bench.actions`). ``python -m bench.composition [--quick]``."""

from __future__ import annotations

import argparse

from bench import actions, mcp


def main(quick: bool = False) -> None:
    mcp.main(quick=quick)
    actions.main(quick=quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
