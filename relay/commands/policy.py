"""``relay policy validate FILE``: load a policy exactly as the relay does and report."""

from __future__ import annotations

import json

import click

from relay.errors import PolicyError


@click.group("policy")
def policy() -> None:
    """Work with policy files."""


@policy.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def validate(file: str, as_json: bool) -> None:
    """Check FILE the way `relay serve` loads it.

    Exit 0 and print a summary when the policy is valid; exit 1 and print
    file:line: what was expected when it is not.
    """
    from relay.policy import load_policy

    try:
        loaded = load_policy(file)
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None
    summary = loaded.summary()
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(f"{summary['file']}: valid policy {summary['name']!r} ({summary['version']}, mode {summary['mode']})")
    actions = ", ".join(f"{n} {a}" for a, n in sorted(summary["actions"].items()))
    monitored = f", {summary['monitored_rules']} in monitor mode" if summary["monitored_rules"] else ""
    click.echo(f"  rules: {summary['rules']} ({actions}{monitored})")
    click.echo(f"  clauses: {'; '.join(summary['clauses'])}")
    click.echo(f"  internal domains: {', '.join(summary['internal_domains'])}")
    click.echo(f"  sender groups: {', '.join(summary['groups']) or '-'}")
    click.echo(f"  distribution lists: {summary['distribution_lists']}")
    click.echo(f"  custom detectors: {', '.join(summary['detectors']) or '-'}")
    click.echo(f"  default: {summary['default_action']}; scanner failure: {summary['scanner_failure']}")
