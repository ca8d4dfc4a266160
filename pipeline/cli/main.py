"""Entry point of the `pipeline` command: parses arguments and maps errors to exit codes."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from pipeline.cli import check, docs, doctor, newplugin, plugins, run, usn, watch
from pipeline.errors import ConfigError, PipelineError
from pipeline.logsetup import LEVELS, configure_logging
from pipeline.redact import redact

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = """\
Route file-system events through pipelines declared in YAML.

A pipeline has sources (what to watch: inotify, poll, ...), stages applied in
order (filter, debounce, ...) and sinks that every remaining event goes to
(console, logfile, ...). Every component is a plugin; `pipeline plugins` lists
the installed ones and `pipeline plugins NAME` shows one's options.
"""

EPILOG = """\
quick tour:
  pipeline watch inbox                   print every event under ./inbox as JSON lines
  pipeline watch inbox --events closed_write,moved --format text
  pipeline check config.yaml             validate a config; errors as FILE:LINE:COL
  pipeline run                           run ./config.yaml until Ctrl-C
  pipeline plugins                       list sources, stages and sinks
  pipeline plugins debounce              options of one component
  pipeline check --connect config.yaml   also probe brokers and endpoints
  pipeline new-plugin my_sink            scaffold a plugin distribution with tests
  pipeline docs                          write the component reference (docs/reference)
  pipeline doctor config.yaml            check limits, privileges, state_dir and brokers
  pipeline run --http 9100               also serve /metrics, /readyz and a dashboard

exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.
environment: FSPIPELINE_DISABLE_PLUGIN_AUTOLOAD=1 skips installed plugins;
             FSPIPELINE_TRACE_PLUGINS=1 logs every hook call (with --log-level debug).
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        choices=LEVELS,
        default=argparse.SUPPRESS,
        help="least severe log level shown (default: info)",
    )
    group.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=argparse.SUPPRESS,
        help="console: coloured lines; json: one JSON object per line; auto (default): "
        "console on a terminal, json otherwise. Logs go to standard error.",
    )
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, check, plugins, watch, docs, newplugin, doctor, usn):
        module.add_parser(commands, common)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fspipeline")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    configure_logging(
        getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"), debug=debug
    )
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(problem + "\n")
        return EXIT_USAGE
    except PipelineError as exc:
        sys.stderr.write(f"pipeline: error: {redact(str(exc))}\n")
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(
            f"pipeline: internal error: {redact(f'{type(exc).__name__}: {exc}')}\n"
            "Run again with --debug for the traceback, and please report it.\n"
        )
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
