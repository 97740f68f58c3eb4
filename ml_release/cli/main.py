"""The `ml-release` command line: the parser and the entry point.

Exit codes are documented in docs/cli.md: 0 promoted or done, 1 blocked by a gate, 2 bad input,
3 lock, conflict or stale, 4 integrity, 5 environment.
"""

import argparse
import os
import sys

from ml_release.cli.common import console, use_spec
from ml_release.cli.registry import (
    cmd_history,
    cmd_promote,
    cmd_register,
    cmd_rollback,
    cmd_status,
)
from ml_release.cli.release import (
    cmd_canary,
    cmd_coverage,
    cmd_recover,
    cmd_run,
    cmd_shadow,
    cmd_validate,
)
from ml_release.cli.tools import (
    SCENARIO_NAMES,
    cmd_demo_data,
    cmd_gates,
    cmd_runtime,
    cmd_serve,
)
from ml_release.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ReleaseError,
    environment_message,
    exit_code_of,
)
from ml_release.home import dagster_home

HELP_EPILOG = """\
exit codes: 0 promoted or done, 1 blocked by a gate, 2 bad input (spec, data, arguments),
            3 lock, conflict, stale verdicts or a wait that ran out, 4 integrity (artifact
            digest, unsafe file, corrupt state), 5 environment (a tool or server, a full disk),
            70 internal error (a bug; traceback saved), 130/143 interrupted

first steps:  ml-release validate && ml-release run
reference:    docs/cli.md (commands), docs/spec.md (release.yaml), docs/gates.md (gates)
"""


def cmd_demo(args: argparse.Namespace) -> int:
    """Seven releases, two canaries and a rollback on generated data, then the history."""
    from ml_release.demo.tour import cmd_demo as tour

    return tour(args)


def _max_wait(parser) -> None:
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds to wait for the warehouse pool another run holds before giving up with "
        "exit 3 (default 900)",
    )


def _model(parser) -> None:
    # SUPPRESS: without it the command's default would overwrite `ml-release --model X CMD`.
    parser.add_argument(
        "--model",
        default=argparse.SUPPRESS,
        help="model name (default: the spec's; required where --spec is a folder of specs)",
    )


def _registry_commands(sub) -> None:
    p = sub.add_parser("register", help=cmd_register.__doc__.splitlines()[0])
    _model(p)
    p.add_argument("path", help="artifact folder (with manifest.json) or a .skops model file")
    p.add_argument("--version", help="version label (default: timestamp and digest)")
    p.set_defaults(func=cmd_register)
    p = sub.add_parser("rollback", help=cmd_rollback.__doc__)
    p.add_argument("--to", help="version to restore (default: the last known-good version)")
    p.add_argument("--reason", default="manual rollback", help="recorded in the ledger")
    p.add_argument(
        "--override",
        action="store_true",
        help="restore --to although it is not known-good (needs --reason; recorded)",
    )
    _model(p)
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser("promote", help=cmd_promote.__doc__)
    p.add_argument("version", help="the gated version to promote over its failed gates")
    p.add_argument("--override", action="store_true", help="required: this is an override")
    p.add_argument("--approver", default="", help="who approved it (recorded)")
    p.add_argument("--reason", default="", help="why the failed gates may be overridden")
    _model(p)
    p.set_defaults(func=cmd_promote)
    for name, func in (("history", cmd_history), ("status", cmd_status)):
        p = sub.add_parser(name, help=func.__doc__)
        _model(p)
        p.set_defaults(func=func)


def _release_commands(sub) -> None:
    p = sub.add_parser("validate", help=cmd_validate.__doc__)
    _model(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("run", help=cmd_run.__doc__)
    _model(p)
    p.add_argument("--candidate", help="artifact folder to gate instead of training one")
    _max_wait(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("canary", help=cmd_canary.__doc__)
    _model(p)
    p.add_argument("--candidate", help="gated version to roll out (default: the latest gated)")
    _max_wait(p)
    p.set_defaults(func=cmd_canary)
    p = sub.add_parser("recover", help=cmd_recover.__doc__)
    p.add_argument(
        "--run",
        action="append",
        help="also mark this stuck run canceled and free its slots (repeatable)",
    )
    p.set_defaults(func=cmd_recover)
    p = sub.add_parser("shadow", help=cmd_shadow.__doc__)
    _model(p)
    p.add_argument("--candidate", help="version to replay to (default: the latest registered)")
    p.set_defaults(func=cmd_shadow)
    p = sub.add_parser("coverage", help=cmd_coverage.__doc__)
    _model(p)
    p.add_argument("--modes", help="comma-separated failure modes (default: all that apply)")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also find the weakest blocked strength of the quantitative modes",
    )
    p.add_argument(
        "--all-gates",
        action="store_true",
        help="run the serving and shadow gates for every mode, not only the modes they target",
    )
    p.add_argument("--out", default="reports", help="folder for coverage.md and coverage.html")
    p.set_defaults(func=cmd_coverage)


def _tool_commands(sub) -> None:
    p = sub.add_parser("demo-data", help=cmd_demo_data.__doc__)
    p.add_argument("--seed", type=int, default=7, help="random seed of the data (default 7)")
    p.add_argument("--out", help="folder (default: $ML_RELEASE_HOME/demo)")
    p.add_argument("--scenario", help="break the holdout: " + ", ".join(SCENARIO_NAMES))
    p.add_argument(
        "--task",
        choices=["binary_classification", "ranking"],
        default="binary_classification",
        help="which demo: credit default (default) or search ranking ($ML_RELEASE_HOME/demo/"
        "ranking, read by examples/ranking/release.yaml)",
    )
    p.set_defaults(func=cmd_demo_data)
    p = sub.add_parser("demo", help=cmd_demo.__doc__)
    p.add_argument("--seed", type=int, default=7, help="random seed of the demo data (default 7)")
    p.set_defaults(func=cmd_demo)
    sub.add_parser("gates", help=cmd_gates.__doc__).set_defaults(func=cmd_gates)
    sub.add_parser("runtime", help=cmd_runtime.__doc__).set_defaults(func=cmd_runtime)
    p = sub.add_parser("serve", help=cmd_serve.__doc__)
    _model(p)
    p.add_argument("--port", type=int, default=8080, help="V2 HTTP port (default 8080)")
    p.add_argument("--metrics-port", type=int, default=8082, help="Prometheus port (8082)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between registry looks")
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ml-release`."""
    parser = argparse.ArgumentParser(
        prog="ml-release",
        description="Release gates for machine-learning models: validate a release spec, gate "
        "a candidate, promote or block it, roll back.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--spec",
        help="release spec (default: $ML_RELEASE_SPEC or ./release.yaml); the state lives in "
        "its project's .ml_release/ unless $ML_RELEASE_HOME says otherwise",
    )
    parser.add_argument(
        "--model",
        help="the model to act on where --spec is a folder of specs (one per model); "
        "also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _release_commands(sub)
    _registry_commands(sub)
    _tool_commands(sub)
    for choice in sub._choices_actions:  # `ml-release COMMAND --help` starts with its summary
        sub.choices[choice.dest].description = choice.help
    return parser


def _internal_error(exc: BaseException) -> int:
    """A bug: a short message, the traceback in a file (never on the terminal), exit 70."""
    import traceback
    from datetime import UTC, datetime

    from ml_release.home import release_home

    try:
        folder = release_home() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / f"error-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.txt"
        saved.write_text("".join(traceback.format_exception(exc)))
        where = f"the traceback is in {saved}"
    except OSError:
        where = "the traceback could not be saved (the disk may be full)"
    console.print(f"[bold red]internal error[/] ({type(exc).__name__}): {exc}", markup=False)
    console.print(f"This is a bug in ml-release, not in your input; {where}. Please report it.")
    return EXIT_INTERNAL


# The commands that load models (skops): they import scipy.special before anything else
# heavy, which halves skops' import (ml_release.skops_order). The others stay light.
LOADS_MODELS = frozenset(
    {cmd_run, cmd_canary, cmd_shadow, cmd_coverage, cmd_demo, cmd_register, cmd_promote}
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ml-release` script: every outcome is a documented exit code."""
    args = build_parser().parse_args(argv)
    if args.func in LOADS_MODELS:
        import ml_release.skops_order  # noqa: F401
    use_spec(args.spec)
    os.environ.setdefault("DAGSTER_HOME", str(dagster_home()))
    try:
        return args.func(args)
    except ReleaseError as exc:
        console.print(f"[bold red]error[/] ({type(exc).__name__}):")
        console.print(str(exc), markup=False, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("interrupted: nothing was recorded for the unfinished step")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the machine's errors are classified; anything else is a bug
        code = exit_code_of(exc)
        if code == EXIT_INTERNAL:
            return _internal_error(exc)
        message = environment_message(exc) if isinstance(exc, OSError) else str(exc)
        console.print(f"[bold red]error[/] ({type(exc).__name__}):")
        console.print(message, markup=False, highlight=False)
        return code


if __name__ == "__main__":
    sys.exit(main())
