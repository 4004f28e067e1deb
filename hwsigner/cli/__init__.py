"""The ``hwsigner`` command: a drop-in for ``aws_signing_helper``, plus device tooling.

    $ hwsigner credential-process --certificate pkcs11:token=dev;object=ra \\
        --trust-anchor-arn ... --profile-arn ... --role-arn ...

Each subcommand lives in a module of this package: ``add_arguments(parser)`` and ``run(args)``
when the module holds one command, ``add_<command>_arguments`` and ``run_<command>`` when it
groups several (``daemons``: ``update``, ``emulator``; ``provision``: ``keygen``,
``csr``, ``import-cert``, ``doctor``). The modules import only
``argparse`` at the top; what a command needs is imported when it runs.
Only this package prints, reads the terminal and chooses exit codes. This module imports
nothing but ``os`` and ``sys``: a cached ``credential-process`` answers from ``cache_hit``
before the parser (``parser``) is even loaded.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["version"]:  # before argparse, which costs more than a bare Python start-up
        from .. import __version__

        sys.stdout.write(__version__ + "\n")
        return 0
    if argv[:1] == ["credential-process"]:
        from ..errors import HwSignerError
        from .cache_hit import agent_answer, cached_answer

        try:
            answer = agent_answer(argv[1:], os.environ) or cached_answer(argv[1:], os.environ)
            if answer is not None:
                sys.stdout.write(answer)
                return 0
        except BrokenPipeError:
            return 1
        except HwSignerError as exc:  # no agent answered, and no --agent-fallback
            sys.stderr.write(error_line(exc) + "\n")
            return 1
    from .parser import build_parser

    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 1
    debug = bool(getattr(args, "debug", False))
    if debug:
        import logging  # only now: it costs start-up time a cached credential-process lacks

        logging.basicConfig(stream=sys.stderr, format="hwsigner: debug: %(message)s")
        logging.getLogger("hwsigner").setLevel(logging.DEBUG)
    from ..errors import HwSignerError

    try:
        from .parser import apply_sources

        apply_sources(args, os.environ)
        return int(args.run(args) or 0)
    except HwSignerError as exc:
        if debug:
            import logging

            logging.getLogger("hwsigner").debug("error detail", exc_info=True)
        sys.stderr.write(error_line(exc) + "\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("hwsigner: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1


def error_line(exc: BaseException) -> str:
    """How an error reaches the user: one printable line, whatever text it carries."""
    from .._safe import one_line

    hint = getattr(exc, "hint", None)
    return one_line(f"hwsigner: {exc}" + (f"; {hint}" if hint else ""), 1000)


def run() -> None:
    """The console-script entry point."""
    sys.exit(main())


__all__ = ["error_line", "main", "run"]
