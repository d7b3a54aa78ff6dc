"""The CLI's exit statuses and its one way of reporting an error: one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum
from typing import NoReturn


class Exit(IntEnum):
    OK = 0
    INPUT = 1  # a file or value given is wrong; nothing was changed (evaluate still decides the other events)
    USAGE = 2  # the command line or the configuration (environment) is wrong; nothing was done
    AWS = 3  # a table could not be read or written, or a decision failed open because of it
    NOT_FOUND = 4  # no such record: trace MESSAGE_ID, tenants remove DOMAIN


# Shown by every --help, and in README "CLI".
EPILOG = """exit status:
  0  done
  1  bad input: a file or value given is wrong (one line on stderr names it); nothing was changed
  2  usage or configuration: wrong command line, a bad or missing setting, no AWS region
  3  AWS: a table could not be read or written, or (evaluate) a decision failed open because of it
  4  not found: no decision recorded for that message id, no such tenant to remove
When several apply (evaluate, one per event), the highest is returned."""

NO_REGION = "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or a region in the AWS profile)"


def fail(message: str, status: Exit) -> Exit:
    """Report ``message`` as ``ipv6gate: <message>`` on stderr (one line) and return ``status``."""
    print(f"ipv6gate: {' '.join(message.split())}", file=sys.stderr)
    return status


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (argparse prints the usage block, then the error)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see: {self.prog} --help)", Exit.USAGE)
        raise SystemExit(Exit.USAGE)
