"""The ``planner`` command line: one module per command (parse, call the Python API, print).

It holds no modelling and no defaults: every number and every default comes from the API, so the
CLI and the app give the same answer for the same inputs. A user mistake prints one line on stderr
naming the field and the rule, and exits with status 2; a bug prints one line and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from planner.cli import calibrate, catalog, compare, search, simulate, sweep, validate
from planner.cli.common import FORMULAS, Parser
from planner.errors import PlannerInputError

COMMANDS = (simulate, catalog, validate, search, compare, sweep, calibrate)
"""The command modules, in the order ``planner --help`` lists them; each has ``add_command(sub)``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``planner`` parser with every subcommand."""
    p = Parser(
        prog="planner",
        description="Distributed-training simulator and capacity planner.",
        epilog=FORMULAS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    for command in COMMANDS:
        command.add_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``planner`` command; the exit status: 0 done, 2 a user mistake, 1 a bug, 130 interrupted."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        return a.func(a)
    except PlannerInputError as e:
        print(f"planner: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in planner, not the user's input: one line, no traceback
        if os.environ.get("PLANNER_DEBUG"):
            raise
        print(
            f"planner: internal error: {type(e).__name__}: {e} (set PLANNER_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


__all__ = ["build_parser", "main"]
