"""The ``relay`` command line. Thin: each command lives in ``relay/commands/``.

Commands are imported only when run, so ``relay --help`` stays fast and one
command's dependencies never slow down another.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from relay.config import Settings
from relay.errors import ConfigError

COMMANDS = {
    "serve": ("relay.commands.serve", "serve", "Run the SMTP relay."),
    "check": ("relay.commands.check", "check", "Run the whole pipeline on one message and print the verdict."),
    "policy": ("relay.commands.policy", "policy", "Work with policy files (validate)."),
    "quarantine": ("relay.commands.quarantine", "quarantine", "Review held messages: list, show, release, delete..."),
    "dkim": ("relay.commands.dkim", "dkim", "DKIM keys (keygen)."),
    "selftest": ("relay.commands.selftest", "selftest", "Check settings, policy, clamd, store and next hop."),
    "sink": ("relay.commands.sink", "sink", "Run a local capture SMTP server that stores what it receives."),
    "milter": ("relay.commands.milter", "milter", "Run the milter front for Postfix or Sendmail."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, envvar="RELAY_CONFIG",
    help="Settings file (TOML). Every key can also be set as RELAY_<KEY> in the environment.",
)


def load_settings(config_path: str | None) -> Settings:
    """Settings for a command; a bad setting stops the command with the precise message."""
    try:
        return Settings.load(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="relay")
def main() -> None:
    """relay: a policy-enforcing SMTP relay."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
