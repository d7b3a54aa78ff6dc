"""docs/smtp-time.md's copyable blocks agree with Postfix's syntax, the unit in packaging/, the CLI and each other.

The blocks are run for real in tests/integration/test_milter_install.py; these are the checks that
need no Postfix: fast, and the first to fail when someone edits the page.
"""

from __future__ import annotations

import shlex
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from devstack import page
from ipv6gate.entrypoints import cli
from ipv6gate.settings import ENV_NAMES, MilterSettings, env_names  # the table itself: test_settings.py

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = page.blocks()
UNIT = page.unit_file(BLOCKS["ipv6gate-milter.service"])


def test_the_main_cf_reader_refuses_an_end_of_line_comment() -> None:
    """What broke Postfix (issue 18): the value became 'accept   # = TEMPERROR_ACTION'."""
    with pytest.raises(ValueError, match="line 2: '#' inside the value of milter_default_action"):
        page.main_cf("milter_protocol = 6\nmilter_default_action = accept   # = TEMPERROR_ACTION\n")
    with pytest.raises(ValueError, match="joins it to the line above"):
        page.main_cf("smtpd_milters = unix:a\n  unix:b\n")
    assert page.main_cf("# a comment on its own line\nnon_smtpd_milters =\n") == {"non_smtpd_milters": ""}


def test_the_pages_main_cf_lines_are_what_postfix_reads() -> None:
    values = page.main_cf(BLOCKS["main.cf"])
    assert values["smtpd_milters"] == "unix:ipv6gate/milter.sock"
    assert values["milter_default_action"] == "accept" and values["non_smtpd_milters"] == ""


def test_the_socket_postfix_is_told_is_the_one_the_unit_listens_on() -> None:
    """A relative unix: path is under queue_directory (/var/spool/postfix on Debian)."""
    relative = page.main_cf(BLOCKS["main.cf"])["smtpd_milters"].removeprefix("unix:")
    _, argv = page.exec_line(UNIT["Service.ExecStart"][0])
    listen = argv[argv.index("--listen") + 1]
    assert listen == f"unix:{PurePosixPath('/var/spool/postfix') / relative}"
    _, made = page.exec_line(UNIT["Service.ExecStartPre"][0])
    assert made[-1] == str(PurePosixPath(listen.removeprefix("unix:")).parent)  # its directory is made first


def test_the_page_shows_the_unit_in_packaging_verbatim() -> None:
    assert BLOCKS["ipv6gate-milter.service"] == (ROOT / "packaging" / "ipv6gate-milter.service").read_text()


def test_the_units_commands_are_valid_command_lines() -> None:
    parser = cli._parser()
    for line in [UNIT["Service.ExecStart"][0], UNIT["Service.ExecStartPre"][1]]:
        _, argv = page.exec_line(line)
        assert argv[0] == "/opt/ipv6gate/bin/ipv6gate"
        args = parser.parse_args(argv[1:])
        assert args.command == "milter"
    _, argv = page.exec_line(UNIT["Service.ExecStart"][0])
    _, make_dir = page.exec_line(UNIT["Service.ExecStartPre"][0])
    # The socket's group is Postfix's through the set-group-ID directory, not through the milter's user.
    group = make_dir[make_dir.index("-g") + 1]
    assert argv[argv.index("--socket-group") + 1] == group == "postfix"
    assert make_dir[make_dir.index("-m") + 1] == "2750"
    assert argv[argv.index("--listen") + 1].startswith(f"unix:{make_dir[-1]}/")


def test_the_milter_user_gets_no_postfix_group_and_starts_before_every_postfix() -> None:
    assert "Service.SupplementaryGroups" not in UNIT
    assert UNIT["Service.Group"] == UNIT["Service.User"] == ["ipv6gate"]
    # Debian runs Postfix's master as postfix@-.service; postfix.service alone does not order it.
    assert {"postfix.service", "postfix@-.service"} <= set(" ".join(UNIT["Unit.Before"]).split())


def test_the_setup_lines_create_what_the_unit_expects() -> None:
    assert subprocess.run(["bash", "-n"], input=BLOCKS["setup"], text=True, check=False).returncode == 0
    lines = {argv[0]: argv for argv in page.commands(BLOCKS["setup"]) if argv[0] == "useradd"}
    useradd = lines["useradd"]
    user = useradd[-1]
    assert [user] == UNIT["Service.User"] == UNIT["Service.Group"]  # --user-group: a group of its own name
    assert "--user-group" in useradd and not {"--groups", "-G"} & set(useradd), "no supplementary group"
    installed = [argv for argv in page.commands(BLOCKS["setup"]) if argv[0] == "install" and "-d" not in argv]
    targets = {argv[-1] for argv in installed}
    assert UNIT["Service.EnvironmentFile"][0] in targets
    assert "/etc/systemd/system/ipv6gate-milter.service" in targets
    assert (ROOT / next(a[-2] for a in installed if a[-1].endswith(".service"))).is_file()


def test_the_environment_file_sets_only_settings_that_exist() -> None:
    env = page.env_file(BLOCKS["milter.env"])
    known = set(ENV_NAMES) | set(env_names(MilterSettings)) | {"AWS_REGION"}
    assert set(env) <= known, set(env) - known
    assert {"TENANTS_TABLE", "AWS_REGION"} <= set(env)


def test_the_install_lines_name_the_wheel_make_dist_builds() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert BLOCKS["build"].split() == ["make", "dist"]
    pip = next(argv for argv in page.commands(BLOCKS["install"]) if argv[0].endswith("/pip"))
    assert pip[-1] == f"dist/ipv6gate-{version}-py3-none-any.whl[milter]"
    assert pip[2:5] == ["--no-index", "--find-links", "dist/wheelhouse"]
    assert "dist:" in (ROOT / "Makefile").read_text() and "dist/wheelhouse" in (ROOT / "Makefile").read_text()


def test_help_shows_the_chrooted_socket_and_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["milter", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "unix:/var/spool/postfix/ipv6gate/milter.sock" in out and "unix:ipv6gate/milter.sock" in out
    for option in ("--socket-mode", "--socket-group", "--check", "--degraded-start"):
        assert option in out
    assert "/run/ipv6gate" not in shlex.join(out.split())
