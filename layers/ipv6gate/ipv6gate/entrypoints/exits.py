"""The CLI's grammar: its exit statuses, its one error shape (``ipv6gate <command>: <what was wrong>``,
one line on stderr, never a traceback), its warnings, and the help text every command ends with."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, NoReturn

from ipv6gate.settings import integer

type Commands = argparse._SubParsersAction[Any]


class Exit(IntEnum):
    OK = 0
    INPUT = 1  # a file or value given is wrong; nothing was changed (evaluate still decides the other events)
    USAGE = 2  # the command line or the configuration (environment) is wrong; nothing was done
    AWS = 3  # a table could not be read or written, or a decision failed open because of a fault
    NOT_FOUND = 4  # no such record: trace MESSAGE_ID, tenants remove DOMAIN


# One line per status, shown by every --help (each command lists those it can return) and README "CLI".
MEANING = {
    Exit.OK: "done",
    Exit.INPUT: "bad input: a file or a value given is wrong (--limit abc, a domain that is an IP address); "
    "the line names it and nothing was changed",
    Exit.USAGE: "usage or configuration: a wrong command line (an unknown or missing argument), a bad or missing "
    "setting, no AWS region",
    Exit.AWS: "AWS: a table could not be read or written, or (evaluate) a decision failed open because of a "
    "fault: the tenants table, the trace, or the raw message in S3",
    Exit.NOT_FOUND: "not found: no decision recorded for that message id, no such tenant to remove",
}

NO_REGION = "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or a region in the AWS profile)"
AWS_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL")
FUNCTION_ENV = (
    "the function's settings (README Settings), e.g. TENANTS_TABLE, TRACE_TABLE, MESSAGE_BUCKET, MESSAGE_PREFIX, "
    "DNS_SERVERS, TEMPERROR_ACTION, TRUSTED_RECEIVERS, PTR_MODE",
    *AWS_ENV,
)


def epilog(environment: Sequence[str], statuses: Sequence[Exit] = tuple(Exit)) -> str:
    """The end of a command's --help: the environment it reads and the exit statuses it can return."""
    lines = ["environment:", textwrap.fill(", ".join(environment), _WIDTH, initial_indent="  ", subsequent_indent="  ")]
    lines += ["", "exit status:"]
    lines += [
        textwrap.fill(f"{int(s)}  {MEANING[s]}", _WIDTH, initial_indent="  ", subsequent_indent="     ")
        for s in statuses
    ]
    lines.append("Errors are one line on stderr: ipv6gate <command>: <what was wrong>.")
    return "\n".join(lines)


_WIDTH = 100


def fail(command: str, message: str, status: Exit) -> Exit:
    """Report ``message`` as ``ipv6gate <command>: <message>`` on stderr (one line) and return ``status``."""
    print(f"{_prefix(command)}: {' '.join(message.split())}", file=sys.stderr)
    return status


def warn(command: str, message: str) -> None:
    """A warning (the command still succeeds): ``ipv6gate <command>: warning: <message>`` on stderr."""
    print(f"{_prefix(command)}: warning: {' '.join(message.split())}", file=sys.stderr)


def _prefix(command: str) -> str:
    return f"ipv6gate {command}" if command else "ipv6gate"


def reason(exc: BaseException) -> str:
    """An exception as words for a user: its message, never its class name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or "failed"


class Parser(argparse.ArgumentParser):
    """argparse in the CLI's grammar: a usage error is one line; a bad value of an option or argument
    (``--limit abc``, ``--format xml``) is bad input (1), a wrong command line (unknown or missing
    arguments) is usage (2)."""

    _bad_value = False

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError:
            self._bad_value = True
            raise

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            # An unknown command is a wrong command line; an unknown --format value is a bad value.
            self._bad_value = not isinstance(action, argparse._SubParsersAction)
            raise

    def error(self, message: str) -> NoReturn:
        status = Exit.INPUT if self._bad_value else Exit.USAGE
        fail(self.prog.removeprefix("ipv6gate").strip(), f"{message} (see: {self.prog} --help)", status)
        raise SystemExit(status)


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``low..high`` (its error names the range, not a type)."""
    check = integer(low, high)

    def parse(text: str) -> int:
        try:
            return check(text.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def command(
    commands: Commands, name: str, text: str, environment: Sequence[str], statuses: Sequence[Exit] = tuple(Exit)
) -> argparse.ArgumentParser:
    """A subcommand whose --help has a description, its environment and its exit statuses.

    Subparsers are made with the parent's class (Parser): their usage errors are one line too.
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=text,
        description=textwrap.fill(text, _WIDTH),
        epilog=epilog(environment, statuses),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser
