"""Paragraphs for the corpus: positives (labels + planted values) and hard negatives (no labels)."""

from __future__ import annotations

import string

from generate import Gen

PD = "personal_data:"


def _pick(g: Gen, options):
    return g.r.choice(options)


# ------------------------------------------------------------------ positives

def p_nino(g: Gen):
    v = g.nino()
    first, last, title = g.person()
    text = _pick(g, [f"Please update the payroll record for {first} {last}: National Insurance number {v}.",
                     f"{title} {last}'s NI number is {v} - can you check HMRC have it?",
                     f"Name: {first} {last}\nNI No: {v}\nStart date: next Monday",
                     f"New starter {first} {last}, NINO {v}, needs adding to the pension scheme.",
                     f"Her national insurance no. is {v} if you need it for the form.",
                     f"{first} {last} ({v}) has joined the team."])
    return text, {PD + "uk_nino"}, [v]


def p_nhs(g: Gen):
    v = g.nhs()
    first, last, title = g.person()
    text = _pick(g, [f"Referral for {title} {last}, NHS number {v}, attached.",
                     f"Patient: {first} {last}\nNHS No: {v}",
                     f"Could you pull the notes for NHS number {v}? It's {first} {last}.",
                     f"The patient's NHS no. is {v}."])
    return text, {PD + "nhs_number"}, [v]


def p_card(g: Gen):
    v = g.card()
    first, last, _ = g.person()
    exp = f"{g.r.randint(1, 12):02d}/{g.r.randint(26, 31)}"
    grouped = " " in v or "-" in v
    options = [f"Please charge my card {v}, expiry {exp}, name {first} {last}.",
               f"Card number: {v}\nExp: {exp}",
               f"The customer's Visa/Mastercard is {v} (exp {exp}) - please process the refund.",
               f"Payment details for the booking: {v} exp {exp}, CVV to follow by phone."]
    if grouped:
        options.append(f"Here you go: {v} {exp}")
    return _pick(g, options), {PD + "payment_card"}, [v]


def p_iban(g: Gen):
    v = g.iban()
    first, last, _ = g.person()
    text = _pick(g, [f"Please refund {first} {last} to IBAN {v}.",
                     f"Bank details for the supplier payment: IBAN: {v}, BIC to follow.",
                     f"My account is {v} - please transfer the deposit there.",
                     f"{first}'s salary should go to {v} from this month."])
    return text, {PD + "iban"}, [v]


def p_bank(g: Gen):
    sc, acct = g.sort_account()
    first, last, _ = g.person()
    text = _pick(g, [f"{first} {last}'s bank details: sort code {sc}, account number {acct}.",
                     f"Sort code: {sc}\nAccount no: {acct}\nName: {first} {last}",
                     f"Please pay the expenses to {sc} {acct} (my bank account).",
                     f"Bank: Barclays, s/c {sc}, a/c {acct}."])
    return text, {PD + "uk_bank_account"}, [acct]


def p_passport(g: Gen):
    v = g.passport()
    first, last, title = g.person()
    text = _pick(g, [f"For the visa letter: {first} {last}, passport number {v}, expires 2031.",
                     f"{title} {last}'s passport no. is {v}.",
                     f"Passport: {v}\nNationality: British",
                     f"I have attached a scan and the passport number is {v}."])
    return text, {PD + "uk_passport"}, [v]


def p_licence(g: Gen):
    first, last, _ = g.person()
    v = g.licence(last)
    text = _pick(g, [f"Driving licence number {v} for the hire car, driver {first} {last}.",
                     f"Driver number: {v}",
                     f"{first} {last} {v} - cleared for the minibus.",
                     f"Can you add {v} to the insurance? It's {first}'s licence."])
    return text, {PD + "uk_driving_licence"}, [v]


def p_utr(g: Gen):
    v = g.utr()
    first, last, _ = g.person()
    text = _pick(g, [f"{first} {last}'s UTR is {v} for the self assessment return.",
                     f"Unique Taxpayer Reference: {v}",
                     f"The contractor ({first} {last}) gave UTR {v} on the invoice.",
                     f"Self-assessment UTR {v} - please file before January."])
    return text, {PD + "uk_utr"}, [v]


def p_dob(g: Gen):
    v = g.dob()
    first, last, title = g.person()
    text = _pick(g, [f"{first} {last}, date of birth {v}, is applying for the course.",
                     f"Name: {title} {first} {last}\nDOB: {v}",
                     f"{first} was born on {v} so is eligible for the scheme.",
                     f"D.O.B. {v} for {first} {last} - please confirm with the registry."])
    return text, {PD + "date_of_birth"}, [v]


def p_special(g: Gen):
    first, last, title = g.person()
    cat, text = _pick(g, [
        ("health", f"{title} {last} has been diagnosed with depression and will be off for two weeks."),
        ("health", f"I wanted to let you know {first} {last} is pregnant and due in March."),
        ("health", f"{first} {last} (employee 4471) is on sick leave following surgery."),
        ("health", f"The patient, {first} {last}, has diabetes and epilepsy; please flag this."),
        ("religion", f"{title} {last} is a practising Muslim and has asked for a prayer room."),
        ("religion", f"{first} {last} is Jewish and cannot attend on Saturday."),
        ("trade_union", f"{first} {last} is a union member and will bring the union rep to the meeting."),
        ("criminal", f"The DBS check for {first} {last} shows a criminal record: convicted of theft in 2015."),
        ("criminal", f"{title} {last} was arrested last week and charged with assault."),
        ("sexual_orientation", f"{first} {last} is gay and asked us to keep that confidential."),
        ("ethnicity", f"For the monitoring form: {title} {last}, ethnic origin Black Caribbean."),
        ("political", f"{first} {last} is a member of the Labour Party and a local councillor candidate."),
        ("genetic", f"{title} {last}'s genetic test came back positive for BRCA1."),
        ("biometric", f"We hold {first} {last}'s fingerprint template for the door system."),
    ])
    return text, {"special_category:" + cat}, []


def p_password(g: Gen):
    pw = "".join(g.r.choice(string.ascii_letters + string.digits) for _ in range(g.r.randint(8, 14))) + \
        g.r.choice("!#$%&*?") + str(g.r.randint(0, 9))
    text = _pick(g, [f"The login for the shared account is admin / password: {pw}",
                     f"Your temporary password is {pw} - please change it.",
                     f"wifi: StaffNet, pwd={pw}",
                     f"Username: jsmith\nPassword: {pw}"])
    return text, {"credential:password"}, [pw]


def p_token(g: Gen):
    rnd = lambda n, al=string.ascii_letters + string.digits: "".join(g.r.choice(al) for _ in range(n))  # noqa: E731
    tok = _pick(g, ["ghp_" + rnd(36), "AKIA" + rnd(16, string.ascii_uppercase + string.digits),
                    "sk_live_" + rnd(24), "xoxb-" + rnd(12, string.digits) + "-" + rnd(24)])
    generic = rnd(32)
    text, value = _pick(g, [(f"Use this token in the script: {tok}", tok),
                            (f"config:\n  api_key = {generic}\n", generic),
                            (f"The deploy key is {tok}, don't share it.", tok)])
    return text, {"credential:api_token"}, [value]


def p_key(g: Gen):
    body = "".join(g.r.choice(string.ascii_letters + string.digits + "+/") for _ in range(64))
    kind = _pick(g, ["RSA ", "EC ", "OPENSSH ", ""])
    text = f"Here's the server key:\n-----BEGIN {kind}PRIVATE KEY-----\n{body}\n{body[::-1]}\n" \
           f"-----END {kind}PRIVATE KEY-----"
    return text, {"credential:private_key"}, [body]


def p_bulk(g: Gen):
    kind = _pick(g, ["email_address", "phone_number", "postal_address", "all"])
    n = g.r.randint(6, 25)
    lines, values = [], []
    for _ in range(n):
        first, last, _ = g.person()
        email, phone, addr = g.email_of(first, last), g.phone(), g.address()
        cells = {"email_address": [f"{first} {last}", email], "phone_number": [f"{first} {last}", phone],
                 "postal_address": [f"{first} {last}", addr], "all": [f"{first} {last}", email, phone, addr]}[kind]
        lines.append(" | ".join(cells) if g.r.random() < 0.5 else ", ".join(cells))
        values += cells[1:]
    labels = {"bulk_contacts:" + k for k in (["email_address", "phone_number", "postal_address"]
                                             if kind == "all" else [kind])}
    return "Here is the list you asked for:\n" + "\n".join(lines), labels, values


def p_table(g: Gen):
    """A CSV attachment whose column headers carry the meaning."""
    cols = g.r.sample([("NHS Number", "nhs_number", g.nhs), ("NI Number", "uk_nino", g.nino),
                       ("Date of Birth", "date_of_birth", g.dob), ("UTR", "uk_utr", g.utr)], 2)
    rows = ["Name," + ",".join(c[0] for c in cols)]
    values = []
    for _ in range(g.r.randint(3, 12)):
        first, last, _ = g.person()
        vals = [c[2]().replace(",", "") for c in cols]
        values += vals
        rows.append(f"{first} {last}," + ",".join(vals))
    if g.r.random() < 0.5:           # as relay.extract writes tables: "Header: value | Header: value"
        head = rows[0].split(",")
        rows = [" | ".join(head)] + [" | ".join(f"{h}: {v}" for h, v in zip(head, r.split(",")))
                                     for r in rows[1:]]
    return "\n".join(rows) + "\n", {PD + c[1] for c in cols}, values


def p_hr_form(g: Gen):
    """A form with several identifiers on labelled lines."""
    first, last, title = g.person()
    sc, acct = g.sort_account()
    nino, dob = g.nino(), g.dob()
    text = (f"New starter form\nName: {title} {first} {last}\nDate of birth: {dob}\nNI number: {nino}\n"
            f"Sort code: {sc}\nAccount number: {acct}\nStart date: 1 September")
    return text, {PD + "uk_nino", PD + "date_of_birth", PD + "uk_bank_account"}, [nino, acct]


def p_wild(g: Gen):
    """Phrasings written after the detectors were tuned, kept to measure generalisation."""
    first, last, title = g.person()
    nino, nhs, card, iban, utr = g.nino(), g.nhs(), g.card(), g.iban(), g.utr()
    sc, acct = g.sort_account()
    options = [
        (f"Hiya - {first}'s NI is {nino}, sorry forgot to put it on the form!", PD + "uk_nino", nino),
        (f"re the claim: {first} {last} / NINO: {nino} / tel to follow", PD + "uk_nino", nino),
        (f"Patient {first} {last} (NHS {nhs}) missed the clinic today.", PD + "nhs_number", nhs),
        (f"Can you check the record for NHS no {nhs}? Mum's details are wrong.", PD + "nhs_number", nhs),
        (f"ok so the card is {card} and the expiry is on the back, I'll text you the code", PD + "payment_card", card),
        (f"My debit card: {card}", PD + "payment_card", card),
        (f"Refund please to my IBAN\n{iban}\nthanks", PD + "iban", iban),
        (f"his UTR (self assessment) = {utr}", PD + "uk_utr", utr),
        (f"Acc {acct} sort {sc} - pls pay by Friday", PD + "uk_bank_account", acct),
        (f"{title} {last} (d.o.b. {g.dob()}) has been referred.", PD + "date_of_birth", ""),
        (f"{first} told me in confidence she's been having chemotherapy.", "special_category:health", ""),
        (f"FYI {first} {last} has a conviction for fraud, HR need to know.", "special_category:criminal", ""),
    ]
    text, label, value = g.r.choice(options)
    return text, {label}, [value] if value else []


POSITIVES = [(p_nino, 10), (p_nhs, 8), (p_card, 10), (p_iban, 8), (p_bank, 7), (p_passport, 6), (p_licence, 6),
             (p_utr, 6), (p_dob, 8), (p_special, 12), (p_password, 5), (p_token, 5), (p_key, 3), (p_bulk, 8),
             (p_table, 6), (p_hr_form, 3), (p_wild, 12)]


# ------------------------------------------------------------------ hard negatives

def n_order(g: Gen):
    v = g.luhn_order()
    return _pick(g, [f"Thanks for your order. Order number: {v}. It will ship in 3 days.",
                     f"Invoice INV-{g.r.randint(1000, 9999)} refers to order {v[:4]} {v[4:8]} {v[8:12]} {v[12:]}.",
                     f"Your tracking number is {v}; the parcel should arrive Tuesday.",
                     f"Ticket #{g.nhs_digits()} has been updated by the service desk.",
                     f"Please quote reference {g.nhs_digits()} on all correspondence.",
                     f"Transaction ID {v} was settled on 03/04/2025."])


def n_isbn(g: Gen):
    isbn = f"978-{g.r.randint(0, 1)}-{g.r.randint(100, 999)}-{g.r.randint(10000, 99999)}-{g.r.randint(0, 9)}"
    return _pick(g, [f"Core text: Giddens, Sociology (9th edn), ISBN {isbn}.",
                     f"ISBN {isbn.replace('-', '')} is out of stock until May.",
                     f"Build {g.r.randint(1000000000000, 1799999999999)} (timestamp) failed; version 4.{g.r.randint(0, 20)}.3.",
                     f"Logged at {g.r.randint(1600000000000, 1799999999999)} ms, serial {g.passport()}."])


def n_test_card(g: Gen):
    return _pick(g, ["For the sandbox use the Stripe test card 4242 4242 4242 4242 with any future expiry.",
                     "Test with 4111 1111 1111 1111 and 5555 5555 5555 4444 in the staging shop.",
                     "The example IBAN in the docs is GB82 WEST 1234 5698 7654 32.",
                     "AWS docs use AKIAIOSFODNN7EXAMPLE as the access key id in examples.",
                     "Passwords must be at least 12 characters. Your password: ********",
                     "If you forget your password, the password reset link is on the portal.",
                     "The password is required and must not be shared. Password: (sent separately)"])


def n_topic(g: Gen):
    first, last, title = g.person()
    return _pick(g, ["Reading list for week 4: Sociology of Religion; Islam in Modern Britain; Health and Illness.",
                     f"Mental Health Awareness Week starts Monday - {title} {last} will give a talk on depression and anxiety.",
                     "The seminar on the history of trade union law and the Labour Party is moved to room 2.",
                     "Our research module covers genetic testing ethics and biometric data in policing.",
                     "The European Union and the UK signed the agreement in 2020.",
                     f"The course on criminal law (convictions and sentencing) is led by {title} {last}.",
                     "Department of Health guidance on diabetes prevention is attached for the policy review."])


def n_dates(g: Gen):
    return _pick(g, [f"The meeting is on {g.dob()} in room 4.", f"Invoice date: {g.dob()}, due in 30 days.",
                     "The project was born out of a 2019 workshop.",
                     f"Customer number {g.passport()} raised a complaint.",
                     f"Product code GB{g.r.randint(100000, 999999)}A and QQ 12 34 56 C are examples only.",
                     f"Sort the files by 12-{g.r.randint(10, 12)}-24 please."])


def n_contact(g: Gen):
    first, last, _ = g.person()
    return _pick(g, [f"The venue is {g.address()} - parking at the rear.",
                     f"Call reception on {g.phone()} if you're running late.",
                     f"I've copied {g.email_of(first, last)} and {g.email_of(last, first)} for info.",
                     f"{first} {last} will be your contact ({g.email_of(first, last, 'example.ac.uk')})."])


def n_thread(g: Gen):
    """A quoted reply chain: header lines and earlier senders' signatures are not a contact list."""
    out = []
    for _ in range(g.r.randint(2, 4)):
        a, b, c = g.person(), g.person(), g.person()
        out.append(f"-----Original Message-----\nFrom: {g.email_of(a[0], a[1])}\nSent: 3 March 2025 10:1{g.r.randint(0, 9)}\n"
                   f"To: {g.email_of(b[0], b[1])}\nCc: {g.email_of(c[0], c[1])}\nSubject: Re: plans\n\n"
                   f"Sounds good.\n\nThanks,\n{a[0]}\nTel: {g.phone()}\n")
    return "\n".join(out)


def n_roles(g: Gen):
    roles = g.r.sample(["info", "finance", "hr", "helpdesk", "library", "estates", "admissions", "payroll",
                        "enquiries", "reception"], 6)
    return "Useful addresses:\n" + "\n".join(f"{r.title()}: {r}@example.ac.uk" for r in roles)


def n_sites(g: Gen):
    """Postcodes of sites and depots: places, not people's addresses."""
    return "Courier collection points this week:\n" + "\n".join(
        f"- {g.f.city()} depot, {g.f.postcode()}" for _ in range(g.r.randint(5, 9)))


def n_wild(g: Gen):
    """Hard negatives written after the detectors were tuned."""
    return g.r.choice([
        f"Your booking reference is {g.nhs_digits()} - keep it for check-in.",
        f"Case no. {g.utr()} has been closed by the tribunal office.",
        f"Part no {g.card_digits()} is back in stock at the warehouse.",
        "The NHS Confederation conference is on 12 June; the ticket is 4 hours long.",
        f"Dr {g.f.last_name()} is presenting new research on cancer screening at the seminar.",
        "New staff password policy: passwords must be changed every 90 days.",
        f"Our VAT number is GB {g.r.randint(100, 999)} {g.r.randint(1000, 9999)} {g.r.randint(10, 99)}.",
        f"Company number {g.r.randint(1000000, 9999999):08d}, registered in England.",
        f"Please use PO {g.passport()} on the invoice.",
    ])


def n_codes(r) -> str:
    """Stock, asset, serial and voucher codes of 16 characters, the driving licence's length and
    letter/digit layout: five letters, six digits, then five letters (a revision or plant code) or
    two letters and three digits. The digits are random, so some of them look like a date of birth.
    ``r`` is its own random.Random (generate.py), so adding these left every other paragraph as it was."""
    letters = lambda n: "".join(r.choice(string.ascii_uppercase) for _ in range(n))  # noqa: E731
    digits = lambda n: "".join(r.choice(string.digits) for _ in range(n))  # noqa: E731
    tail = letters(5) if r.random() < 0.5 else letters(2) + digits(3)
    code = letters(5) + digits(6) + tail
    return r.choice([f"Asset tag {code} (laptop) is due back to IT on Friday.",
                     f"Replacement part {code} has been ordered for the printer on level 2.",
                     f"Your voucher code is {code}; it expires at the end of the month.",
                     f"Serial no. {code} - please register the warranty before the 30th.",
                     f"The toner cartridges are stock item {code}, six per box.",
                     f"Activation code for the site software: {code}",
                     f"Equipment {code} failed its PAT test and has been withdrawn."])


NEGATIVES = [n_order, n_isbn, n_test_card, n_topic, n_dates, n_contact, n_thread, n_roles, n_sites, n_wild]
FILLER = ["Hope you're well.", "Thanks for the quick reply.", "Let me know if anything else is needed.",
          "I'll be out of office on Friday.", "See the notes from yesterday's meeting below.",
          "Could we move the call to 3pm?", "The report is attached for your review.",
          "Apologies for the delay in getting back to you."]


def signature(g: Gen, first: str, last: str) -> str:
    return (f"{_pick(g, ['Kind regards', 'Best wishes', 'Thanks', 'Regards', 'Many thanks'])},\n{first} {last}\n"
            f"{g.f.job()}\n{g.f.company()}\nTel: {g.phone()}\n{g.street()}\n{g.f.city()} {g.f.postcode()}")
