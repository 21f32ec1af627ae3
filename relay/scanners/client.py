"""Desktop mail clients (clause 5.4: browser mail, not desktop applications).

Reads ``X-Mailer`` and ``User-Agent`` (and ``X-Newsreader``). Web clients are
recognised first and never reported: Outlook on the web / OWA, Roundcube,
SOGo, Horde/IMP, SquirrelMail, RainLoop/SnappyMail, Zimbra's web client,
Yahoo and AOL web mail; Gmail in a browser adds no X-Mailer at all. Then
desktop clients give ``desktop_client`` with type ``outlook``,
``thunderbird``, ``apple_mail`` or ``other`` (Evolution, Claws, Mutt,
eM Client, KMail, Mailbird, Postbox, The Bat!, ...). The evidence is the
client's product name (no version strings, no host names).

Mobile apps (Outlook for iOS/Android, iPhone/iPad Mail, K-9, Samsung Email,
Gmail app) are not desktop applications in the clause's words, so they are
not reported by default; ``report_mobile=True`` reports them with type
``mobile`` (they too keep mail on the device, which is the clause's concern).
A header naming no known client (scripts, libraries such as PHPMailer or
Python, unknown agents) gives nothing: no guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext

HEADERS = ("X-Mailer", "User-Agent", "X-Newsreader")

_WEB = re.compile(
    r"outlook\s*web\s*(app|access)|\bowa\b|outlook-web|outlook\.(com|office)|roundcube|\bsogo|\bhorde\b"
    r"|\bimp\b|squirrelmail|rainloop|snappymail|zimbrawebclient|zimbra\s*web|yahoo\s*mail|\baol\s*webmail"
    r"|\bweb\s*mail\b|webmail|gmail\b(?!.*android)",
    re.I,
)
_MOBILE = re.compile(
    r"outlook-(ios|android)|outlook\s+for\s+(ios|android)|iphone\s*mail|ipad\s*mail|\bios\s*mail"
    r"|k-9\s*mail|k9mail|samsung\s*(email|mail)|blackberry|android\s*mail|gmail.*android|fairemail"
    r"|aquamail|spark\s*(for|mobile)\s*(ios|android)",
    re.I,
)
# (pattern, type, product name for the evidence); the first match wins.
_DESKTOP: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(p, re.I), t, name) for p, t, name in (
        (r"microsoft[\s-]*macoutlook|macoutlook", "outlook", "Microsoft Outlook for Mac"),
        (r"microsoft\s*(office\s*)?outlook(?!\s*express)", "outlook", "Microsoft Outlook"),
        (r"^\s*outlook\s*\d", "outlook", "Microsoft Outlook"),
        (r"thunderbird", "thunderbird", "Thunderbird"),
        (r"betterbird", "thunderbird", "Betterbird"),
        (r"^\s*apple\s*mail\b|\bmac\s*os\s*x\s*mail\b", "apple_mail", "Apple Mail"),
        (r"outlook\s*express", "other", "Outlook Express"),
        (r"windows\s*live\s*mail|windows\s*mail", "other", "Windows Mail"),
        (r"\bevolution\b", "other", "Evolution"),
        (r"claws\s*mail|sylpheed", "other", "Claws Mail"),
        (r"\bneomutt\b|\bmutt\b", "other", "Mutt"),
        (r"\bem\s*client\b", "other", "eM Client"),
        (r"\bkmail\b", "other", "KMail"),
        (r"mailbird", "other", "Mailbird"),
        (r"postbox", "other", "Postbox"),
        (r"the\s*bat!", "other", "The Bat!"),
        (r"pegasus\s*mail", "other", "Pegasus Mail"),
        (r"seamonkey", "other", "SeaMonkey"),
        (r"\bgeary\b", "other", "Geary"),
        (r"mailspring", "other", "Mailspring"),
        (r"\balpine\b", "other", "Alpine"),
        (r"lotus\s*notes|ibm\s*notes|hcl\s*notes", "other", "Notes"),
        (r"microsoft[\s-]*entourage", "other", "Entourage"),
        (r"\bairmail\b", "other", "Airmail"),
        (r"zimbra\s*desktop", "other", "Zimbra Desktop"),
    )
)


def classify(value: str) -> tuple[str, str] | None:
    """``(type, product)`` for a client header value; ``None`` for web or unknown clients.

    ``type`` is ``mobile`` for mobile apps (the caller decides whether to report them).
    """
    if _MOBILE.search(value):
        return ("mobile", "mobile mail app")
    if _WEB.search(value):
        return None
    for pattern, type_, product in _DESKTOP:
        if pattern.search(value):
            return (type_, product)
    return None


class DesktopClientScanner:
    name = "client"

    def __init__(self, report_mobile: bool = False) -> None:
        self.report_mobile = report_mobile

    async def scan(self, ctx: ScanContext) -> Sequence[Finding]:
        return self.scan_sync(ctx)

    def scan_sync(self, ctx: ScanContext) -> list[Finding]:
        for header in HEADERS:
            for value in ctx.message.header_all(header):
                found = classify(value[:500])
                if found is None:
                    continue
                type_, product = found
                if type_ == "mobile" and not self.report_mobile:
                    continue
                confidence = Confidence.MEDIUM if type_ == "mobile" else Confidence.HIGH
                return [Finding("desktop_client", type_, confidence, 1, f"header {header}", product)]
        return []
