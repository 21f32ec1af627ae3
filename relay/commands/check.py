"""``relay check FILE.eml``: the whole pipeline on one message, nothing sent, verdict printed.

It parses, extracts, runs every scanner the relay runs (clamd from the
settings included) and evaluates the policy, then prints the verdict, every
matching rule with its clause and reason, the action per recipient, the tags
and the findings (their evidence is already redacted by the scanners). When
clamd cannot be reached the output shows the ``scanner_unavailable`` finding
and the tempfail verdict the relay would give. Nothing is forwarded, held or
logged as a decision.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import email.utils
import inspect
import json
import sys

import click

from relay.cli import config_option, load_settings
from relay.envelope import Envelope
from relay.errors import PolicyError
from relay.log import clean


def default_envelope(raw: bytes, mail_from: str | None, rcpt_tos: tuple[str, ...]) -> Envelope:
    """The envelope to test with: the options given, else taken from the headers."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)

    def addresses(*names: str) -> list[str]:
        values = [str(v) for n in names for v in headers.get_all(n, [])]
        return [a for _, a in email.utils.getaddresses(values) if "@" in a]

    if mail_from is None:
        found = addresses("Return-Path") or addresses("Sender") or addresses("From")
        mail_from = found[0] if found else ""
    if not rcpt_tos:
        rcpt_tos = tuple(dict.fromkeys(addresses("To", "Cc", "Bcc")))
    return Envelope(mail_from, tuple(rcpt_tos), client_address="127.0.0.1", client_name="localhost", helo="relay-check")


async def run_pipeline(settings, policy, envelope: Envelope, raw: bytes):
    """Decide one message with the relay's own scanners; scanners are closed afterwards."""
    from relay.pipeline import Pipeline
    from relay.scanners import build_scanners

    scanners = build_scanners(settings)
    try:
        return await Pipeline(settings, policy, scanners).decide(envelope, raw)
    finally:
        for scanner in scanners:
            closer = getattr(scanner, "aclose", None) or getattr(scanner, "close", None)
            if callable(closer):
                result = closer()
                if inspect.isawaitable(result):
                    await result


def decision_dict(decision, policy) -> dict[str, object]:
    verdict = decision.verdict
    return {
        "action": str(verdict.action),
        "policy": policy.spec.path,
        "policy_version": verdict.policy_version,
        "envelope": {"mail_from": decision.envelope.mail_from, "rcpt_tos": list(decision.envelope.rcpt_tos)},
        "size": decision.message.size,
        "recipients": {r: str(a) for r, a in verdict.recipient_actions.items()},
        "rules": [{**m.as_dict(), "notify_sender": m.notify_sender} for m in verdict.matches],
        "tag": {"headers": [list(h) for h in verdict.tag.headers], "subject_prefix": verdict.tag.subject_prefix},
        "findings": [f.as_dict() for f in decision.findings],
        "timings_ms": {k: round(v * 1000, 3) for k, v in decision.timings.items()},
    }


def render(out: dict) -> list[str]:
    lines = [f"verdict: {out['action']}   (policy {out['policy']}, {out['policy_version']})"]
    env = out["envelope"]
    lines.append(f"envelope: from <{clean(env['mail_from'])}>, {len(env['rcpt_tos'])} recipient(s), {out['size']} bytes")
    for rcpt, action in out["recipients"].items():
        lines.append(f"  {action:<8} {clean(rcpt)}")
    lines.append(f"rules matched: {len(out['rules'])}" + ("" if out["rules"] else " (the default action applies)"))
    for m in out["rules"]:
        verb = f"monitor (would {m['action']})" if m.get("monitor") else m["action"]
        scope = "" if "recipients" not in m else " for " + ", ".join(clean(r) for r in m["recipients"])
        notify = " [notify sender]" if m["notify_sender"] else ""
        lines.append(f"  {verb:<8} {m['id']}  clause {m['clause']}{scope}{notify}")
        lines.append(f"           {m['reason']}")
    tag = out["tag"]
    if tag["headers"] or tag["subject_prefix"]:
        lines.append("tags on the forwarded copy:")
        lines.extend(f"  {name}: {value}" for name, value in tag["headers"])
        if tag["subject_prefix"]:
            lines.append(f"  Subject prefix: {tag['subject_prefix']}")
    lines.append(f"findings: {len(out['findings'])}")
    for f in out["findings"]:
        kind = f"{f['kind']}/{f['type']}" if f["type"] else f["kind"]
        prot = " protected" if f["protected"] else ""
        evidence = f"  [{clean(f['evidence'], 80)}]" if f["evidence"] else ""
        lines.append(f"  {kind}  {f['confidence']} x{f['count']}{prot}  in {clean(f['where'], 120)}{evidence}")
    return lines


@click.command("check")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--from", "mail_from", default=None, metavar="ADDRESS",
              help="Envelope sender (default: Return-Path, Sender or From of the message).")
@click.option("--to", "rcpt_tos", multiple=True, metavar="ADDRESS",
              help="Envelope recipient; repeat for more (default: To, Cc and Bcc of the message).")
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Policy file (default: the `policy` setting).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@config_option
def check(file: str, mail_from: str | None, rcpt_tos: tuple[str, ...], policy_path: str | None,
          as_json: bool, config_path: str | None) -> None:
    """Run the whole pipeline on FILE.eml (`-` for stdin) and print the verdict; nothing is sent.

    Exit status 0 when the message was checked, whatever the verdict; 1 when
    the settings, the policy or the file cannot be used.
    """
    from relay import log
    from relay.policy import load_policy

    settings = load_settings(config_path)
    try:
        policy = load_policy(policy_path or settings.policy)
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None
    try:
        with click.open_file(file, "rb") as fh:
            raw = fh.read(settings.max_message_size + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
    if len(raw) > settings.max_message_size:
        raise click.ClickException(f"{file}: larger than max_message_size ({settings.max_message_size} bytes); "
                                   "the relay would refuse it before DATA ends")
    envelope = default_envelope(raw, mail_from, rcpt_tos)
    if not envelope.rcpt_tos:
        raise click.ClickException("no recipients: give --to ADDRESS or a message with To/Cc/Bcc")
    log.configure(settings.log_format, stream=sys.stderr)  # scanners' warnings to stderr: stdout is the verdict
    decision = asyncio.run(run_pipeline(settings, policy, envelope, raw))
    out = decision_dict(decision, policy)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        click.echo("\n".join(render(out)))
