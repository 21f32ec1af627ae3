"""``relay dkim keygen``: make a signing key and print the DNS record to publish;
``relay dkim record``: print the records of the configured keys."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.cli import config_option, load_settings
from relay.dkim import MIN_RSA_BITS, SigningKey, is_dns_name, load_key, normalise_domain
from relay.errors import ConfigError

TXT_CHUNK = 255      # longest character-string in a TXT record (RFC 1035 3.3)


def public_value(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The p= value of the DNS record: DER SubjectPublicKeyInfo (RSA) or the raw key (Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(public).decode("ascii")


def generate(kind: str, bits: int) -> tuple[bytes, str]:
    """(private key PEM, p= value of the DNS record) for a new key."""
    key = (ed25519.Ed25519PrivateKey.generate() if kind == "ed25519"
           else rsa.generate_private_key(public_exponent=65537, key_size=bits))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, public_value(key)


def record_for(key: SigningKey) -> str:
    """The TXT record that publishes a loaded signing key."""
    kind = "ed25519" if key.algorithm.startswith("ed25519") else "rsa"
    return txt_record(key.domain, key.selector, kind, public_value(key.private))


def txt_record(domain: str, selector: str, kind: str, public: str) -> str:
    """``S._domainkey.D IN TXT "v=DKIM1; k=...; p=..."``, in 255-character strings."""
    text = f"v=DKIM1; k={kind}; p={public}"
    chunks = [text[i:i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain} IN TXT {quoted}"


def write_private(path: Path, pem: bytes, force: bool) -> None:
    """Write ``pem`` to ``path`` with mode 0600; never over an existing file unless ``force``."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to replace it")
    fd, tmp = tempfile.mkstemp(prefix=".keygen-", dir=path.parent or Path("."))   # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)     # fails if the path appeared meanwhile
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise click.ClickException(f"{path} exists; use --force to replace it") from None
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None


@click.group()
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command()
@click.option("--domain", required=True, help="Signing domain (d=), e.g. example.ac.uk.")
@click.option("--selector", required=True, help="Selector (s=), e.g. relay2026.")
@click.option("--type", "kind", type=click.Choice(["rsa", "ed25519"]), default="rsa", show_default=True,
              help="Key type. Ed25519 (RFC 8463) is not verified everywhere yet: pair it with an RSA key.")
@click.option("--bits", type=click.IntRange(min=MIN_RSA_BITS, max=8192), default=2048, show_default=True,
              help="RSA key size.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the private key (PEM, mode 0600). Default: SELECTOR.DOMAIN.pem.")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def keygen(domain: str, selector: str, kind: str, bits: int, out: Path | None, force: bool) -> None:
    """Make a DKIM key; write it (mode 0600) and print the DNS TXT record to publish."""
    domain = normalise_domain(domain)
    if not is_dns_name(domain) or not is_dns_name(selector):
        raise click.BadParameter("domain and selector must be DNS names", param_hint="--domain/--selector")
    out = out or Path(f"{selector}.{domain}.pem")
    pem, public = generate(kind, bits)
    write_private(out, pem, force)
    click.echo(f"; private key written to {out} (mode 0600); settings: dkim_domain = \"{domain}\", "
               f"dkim_selector = \"{selector}\", dkim_key = \"{out}\"", err=True)
    click.echo(txt_record(domain, selector, kind, public))


@dkim.command()
@config_option
def record(config_path: str | None) -> None:
    """Print the DNS TXT record of every configured signing key (checks each key too)."""
    settings = load_settings(config_path)
    if not settings.signing_keys:
        raise click.ClickException("no DKIM keys configured (dkim_domain/dkim_selector/dkim_key or [[dkim_keys]])")
    for entry in settings.signing_keys:
        try:
            click.echo(record_for(load_key(entry)))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
