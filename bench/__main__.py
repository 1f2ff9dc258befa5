"""Run every benchmark: ``python -m bench [--quick]``."""

from __future__ import annotations

import argparse

from bench import composition, gateway, invoke, nl, retrieval, sandbox, scale_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args()
    invoke.main(quick=args.quick)
    scale_out.main(quick=args.quick)
    sandbox.main(quick=args.quick)
    retrieval.main(quick=args.quick)
    nl.main(quick=args.quick)
    composition.main(quick=args.quick)
    gateway.main(quick=args.quick)


if __name__ == "__main__":
    main()
