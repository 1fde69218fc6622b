"""``nl-tracker``: one console command, one thin subcommand module each.

Each module in ``nl_tracker_ros.commands`` exposes ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``; the work itself lives in the core. Modules are imported only when their
subcommand runs, so ``nl-tracker scenes`` does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from nl_tracker_ros.errors import TrackerError

SUBCOMMANDS = ('demo', 'track', 'eval', 'replay', 'scenes', 'train', 'train-recovery',
               'train-kinds', 'bench', 'export')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='nl-tracker', description='Language-guided tracking: demo, evaluation, training.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"nl_tracker_ros.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


BROKEN_PIPE = 141   # what a shell reports for a tool ended by SIGPIPE (128 + 13)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; its TrackerError becomes one line on stderr and status 2."""
    try:
        args = build_parser().parse_args(argv)
        try:
            return int(args._module.run(args) or 0)
        except TrackerError as exc:
            print(f'nl-tracker {args.command}: {exc}', file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`nl-tracker ... | head`): stop quietly, as Unix tools do, and
        # keep the interpreter from complaining when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == '__main__':
    sys.exit(main())
