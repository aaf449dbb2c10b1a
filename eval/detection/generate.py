"""Generates the free-text detection corpus: support-ticket sentences around PII that Faker draws in 15
locales, and words that must survive.

Four corpora, disjoint in seed and in sentence templates: ``dev`` (what detection was developed against),
``report`` (held out: values never looked at, templates seen) and ``blind`` (values and templates both
unseen by the detectors' author: its templates, in ``templates_blind.py``, were written before the
detection code was read; several values per text, keepers inside the sentences too), then its misses were
fixed; and ``fresh`` (``templates_fresh.py``: templates written by someone who had read neither the
detection code nor the other corpora's templates, measured once and never tuned on). Every planted value
is a third party's (the record's own values, also given as ``known``, are other draws), so only text
detection can find it. Each planted value lists its ``secrets``: the character spans that must not
survive (a whole name; the local part and domain of an obfuscated email, not its "at"/"dot").

    python -m eval.detection.generate         # rewrites eval/detection/corpus-{dev,report,blind,fresh}.jsonl
    python -m eval.detection.generate --corpus blind  # one of them
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from faker import Faker

from eval.detection import templates_blind, templates_fresh

HERE = Path(__file__).parent
SEEDS = {"dev": 20261206, "report": 7350411, "blind": 90417733, "fresh": 61328054}
TEXTS_PER_LOCALE = 48
# The corpora whose templates are in a module of their own, and how many texts each locale gets.
TEMPLATED = {"blind": (templates_blind, 55), "fresh": (templates_fresh, 110)}  # five / ten per kind

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
    "pl_PL", "sv_SE", "ja_JP", "zh_CN", "hi_IN", "tr_TR", "ar_AA",
)  # fmt: skip
NON_LATIN = frozenset({"ja_JP", "zh_CN", "hi_IN", "ar_AA"})
# Locales that also get sentences in their own language (the rest of the corpus is English).
OWN_LANGUAGE = {"de_DE": "de", "fr_FR": "fr", "es_ES": "es"}

# Templates: "{v}" is the planted value. Two pools per kind, one per corpus.
PII_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "name": (
        (
            "My colleague {v} will call you back tomorrow.",
            "I already spoke to {v} about the refund.",
            "{v} from the other branch said the order shipped.",
            "The previous tenant, {v}, still gets mail here.",
            "Please forward this to {v} in accounting.",
            "Yesterday {v} promised a replacement.",
        ),
        (
            "Your agent {v} closed my ticket without an answer.",
            "The parcel was signed for by {v}, not by me.",
            "Can you ask {v} to check the invoice?",
            "My neighbour {v} received my package by mistake.",
            "I was told by {v} that the warranty covers it.",
            "Both my son and {v} use this account.",
        ),
    ),
    "address": (
        (
            "Please ship it to {v} instead.",
            "The old address {v} is wrong.",
            "I moved to {v} last month.",
            "Deliver to my office at {v}, second floor.",
        ),
        (
            "My new address is {v}.",
            "The courier left it at {v} by mistake.",
            "Send the invoice to {v}, please.",
            "We live at {v} since March.",
        ),
    ),
    "email_obfuscated": (
        (
            "You can reach my sister at {v} if I am away.",
            "Write to {v} for the paperwork.",
            "Her contact is {v}.",
        ),
        (
            "Contact my husband: {v}.",
            "Send a copy to {v} as well.",
            "The shop owner's mail is {v}.",
        ),
    ),
    "dob": (
        (
            "I was born on {v} and the form rejects it.",
            "My DOB is {v}, please correct it.",
            "Date of birth: {v}.",
            "My father's birthday is {v}.",
        ),
        (
            "My date of birth is {v}, not what you have.",
            "The account holder was born {v}.",
            "DOB {v}, in case you need to verify me.",
            "His birth date is {v}.",
        ),
    ),
    "phone": (
        (
            "Call my wife on {v} after six.",
            "The technician's number is {v}.",
            "You can text {v} instead.",
        ),
        (
            "My landlord can be reached at {v}.",
            "Phone {v} if nobody answers.",
            "Her mobile: {v}.",
        ),
    ),
    "card": (
        (
            "The charge went to card {v} twice.",
            "Please refund to {v}.",
        ),
        (
            "I paid with {v} but got no receipt.",
            "My other card, {v}, was declined.",
        ),
    ),
    "email": (
        (
            "My manager uses {v} now.",
            "Send the receipt to {v}.",
        ),
        (
            "The order confirmation went to {v} by mistake.",
            "Please cc {v}.",
        ),
    ),
    "iban": (
        (
            "Refund to IBAN {v} please.",
            "My account is {v}.",
        ),
        (
            "Wire it to {v}, the old account is closed.",
            "Use {v} for the transfer.",
        ),
    ),
    "ip": (
        (
            "The login came from {v}, not from me.",
            "My router shows {v}.",
        ),
        (
            "Someone connected from {v} last night.",
            "The blocked address was {v}.",
        ),
    ),
    "url_username": (
        (
            "My profile is {v} if you want to check.",
            "See the screenshots at {v}.",
        ),
        (
            "Her page {v} shows the problem.",
            "I posted about it on {v}.",
        ),
    ),
    "national_id": (
        (
            "My ID number is {v}.",
            "For verification: {v}.",
        ),
        (
            "The form asked for my national id, {v}.",
            "Identity number {v} is on file.",
        ),
    ),
}

# Sentences in the locale's own language (used for OWN_LANGUAGE locales, both corpora by seed).
FOREIGN_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "name": ("Mein Kollege {v} ruft Sie morgen an.", "Ich habe schon mit {v} gesprochen."),
        "address": ("Bitte liefern Sie an {v}.", "Meine neue Adresse ist {v}."),
        "dob": ("Mein Geburtsdatum ist der {v}.", "Ich bin am {v} geboren."),
        "phone": ("Rufen Sie mich unter {v} an.", "Meine Nummer: {v}."),
        "email": ("Schreiben Sie an {v}.", "Meine E-Mail ist {v}."),
    },
    "fr": {
        "name": ("Mon collègue {v} vous rappellera demain.", "J'ai déjà parlé à {v}."),
        "address": ("Merci de livrer au {v}.", "Ma nouvelle adresse est {v}."),
        "dob": ("Je suis né le {v}.", "Date de naissance : {v}."),
        "phone": ("Appelez-moi au {v}.", "Mon numéro : {v}."),
        "email": ("Écrivez à {v}.", "Mon adresse e-mail est {v}."),
    },
    "es": {
        "name": ("Mi compañero {v} le llamará mañana.", "Ya hablé con {v}."),
        "address": ("Envíelo a {v}, por favor.", "Mi nueva dirección es {v}."),
        "dob": ("Nací el {v}.", "Fecha de nacimiento: {v}."),
        "phone": ("Llámeme al {v}.", "Mi teléfono: {v}."),
        "email": ("Escriba a {v}.", "Mi correo es {v}."),
    },
}

KEEPER_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "error_code": (
        ("The app shows code {v} on start.", "Error {v} again."),
        ("It fails with code {v}.", "I keep getting error {v}."),
    ),
    "version": (
        ("I am on version {v}.", "Since update {v} it crashes."),
        ("The release {v} broke it.", "Running {v} on my phone."),
    ),
    "amount": (
        ("I was charged {v} instead.", "The refund of {v} never arrived."),
        ("They billed {v} twice.", "A fee of {v} appeared."),
    ),
    "product": (
        ("The {v} stopped charging.", "My {v} arrived broken."),
        ("I returned the {v} last week.", "Is the {v} still under warranty?"),
    ),
    "order_id": (
        ("Order {v} is missing.", "Reference {v}."),
        ("Ticket {v} is still open.", "See case {v}."),
    ),
    "weekday": (
        ("{v} was the third failed delivery.", "Nobody came on {v}."),
        ("It happened on {v} morning.", "By {v} I still had nothing."),
    ),
}


@dataclass
class Item:
    kind: str
    value: str
    secrets: list[str] = field(default_factory=list)  # substrings of value that must not survive


@dataclass
class Text:
    id: str
    locale: str
    language: str
    text: str
    known: list[tuple[str, str]]
    planted: list[dict[str, Any]]
    keepers: list[dict[str, Any]]


def _grouped(digits: str, rng: random.Random) -> str:
    style = rng.choice(("none", "4", "4-", "465", "dots"))
    if style == "none":
        return digits
    if style == "465" and len(digits) == 15:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    separator = "-" if style == "4-" else "." if style == "dots" else " "
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


_DOB_FORMATS = ("%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%B %d, %Y", "%d %B %Y", "%d-%m-%Y")


def _valid_draw(make: Callable[[], str], valid: Callable[[str], bool]) -> str | None:
    """A value ``make`` draws that python-stdnum validates (Faker does not always compute checksums)."""
    for _ in range(200):
        value = make()
        if valid(value):
            return value
    return None


def _national_id(fake: Faker, locale: str) -> str | None:
    """An identifier of a kind Presidio ships a recognizer for, drawn by Faker for that locale and
    validated by python-stdnum (the issue asks for ids whose checksums validate)."""
    from stdnum.es import nif
    from stdnum.in_ import aadhaar
    from stdnum.it import codicefiscale
    from stdnum.pl import pesel
    from stdnum.se import personnummer
    from stdnum.tr import tckimlik
    from stdnum.us import ssn

    india = Faker("en_IN")
    india.seed_instance(fake.random.randint(0, 10**9))
    makers: dict[str, tuple[Callable[[], str], Callable[[str], bool]]] = {
        "en_US": (lambda: str(fake.ssn()), ssn.is_valid),
        "es_ES": (lambda: str(fake.nif()), nif.is_valid),
        "it_IT": (lambda: str(fake.ssn()), codicefiscale.is_valid),
        "pl_PL": (lambda: str(fake.pesel()), pesel.is_valid),
        "sv_SE": (lambda: str(fake.ssn()), personnummer.is_valid),
        "tr_TR": (lambda: str(fake.ssn()), tckimlik.is_valid),
        "hi_IN": (lambda: str(india.aadhaar_id()), aadhaar.is_valid),
    }
    if locale not in makers:
        return None
    return _valid_draw(*makers[locale])


def _obfuscated(email: str, rng: random.Random) -> Item:
    local, domain = email.split("@")
    host, _, tld = domain.rpartition(".")
    styles = (
        f"{local} at {host} dot {tld}",
        f"{local}(at){host}.{tld}",
        f"{local} [at] {host} [dot] {tld}",
        f"{local} AT {host} DOT {tld}",
        f"{local}@{host} dot {tld}",
        f"{local} {{at}} {host} {{dot}} {tld}",
    )
    return Item("email_obfuscated", rng.choice(styles), [local, host])


def _owner(locale: str, rng: random.Random) -> list[tuple[str, str]]:
    """The known values of the record a text comes from: its owner's name and email (other draws)."""
    owner = Faker(locale)
    owner.seed_instance(rng.randint(0, 10**9))
    return [("PERSON", str(owner.name())), ("EMAIL_ADDRESS", str(owner.email()))]


def draw(kind: str, fake: Faker, locale: str, rng: random.Random) -> Item | None:
    """One planted value of ``kind`` for ``locale`` (None when the locale has no such value)."""
    if kind == "name":
        # First and last name without the titles and suffixes ``name()`` may add ("Prof.", "MBA"):
        # those are not what identifies the person.
        first, last = str(fake.first_name()), str(fake.last_name())
        name = (
            f"{last}{first}"
            if locale == "zh_CN"
            else f"{last} {first}"
            if locale == "ja_JP"
            else f"{first} {last}"
        )
        if locale in NON_LATIN:
            return Item("name_script", name, [name])
        if rng.random() < 0.4:
            return Item("name_lower", name.lower(), [name.lower()])
        return Item("name", name, [name])
    if kind == "address":
        address = re.sub(r"\s*\n\s*", ", ", str(fake.street_address())).strip(", ")
        return Item("address", address, [address])
    if kind == "email_obfuscated":
        return _obfuscated(str(fake.email()), rng)
    if kind == "dob":
        born = fake.date_of_birth(minimum_age=18, maximum_age=90)
        value = born.strftime(rng.choice(_DOB_FORMATS))
        return Item("dob", value, [value])
    if kind == "phone":
        phone = str(fake.phone_number())
        return Item("phone", phone, [phone])
    if kind == "card":
        # Card networks are not a locale's: every locale draws from the same provider.
        cards = Faker("en_US")
        cards.seed_instance(rng.randint(0, 10**9))
        card = str(
            cards.credit_card_number(
                rng.choice(
                    ("visa16", "mastercard", "amex", "jcb15", "jcb16", "diners", "discover", "maestro")
                )
            )
        )
        value = _grouped(card, rng)
        return Item("card", value, [value])
    if kind == "email":
        email = str(fake.email())
        return Item("email", email, [email])
    if kind == "iban":
        from stdnum import iban as stdnum_iban

        # Some locales' providers draw IBANs of the wrong length: keep only valid ones.
        drawn = _valid_draw(lambda: str(fake.iban()), stdnum_iban.is_valid)
        if drawn is None:
            fallback = Faker("en_GB")
            fallback.seed_instance(rng.randint(0, 10**9))
            drawn = str(fallback.iban())
        iban = drawn
        if rng.random() < 0.5:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return Item("iban", iban, [iban])
    if kind == "ip":
        ip = str(fake.ipv4_public() if rng.random() < 0.7 else fake.ipv6())
        return Item("ip", ip, [ip])
    if kind == "url_username":
        user = str(fake.user_name())
        site = rng.choice(
            ("https://github.com/{}", "https://twitter.com/{}", "https://www.instagram.com/{}/",
             "https://www.linkedin.com/in/{}", "https://www.facebook.com/{}", "https://medium.com/@{}")
        )  # fmt: skip
        return Item("url_username", site.format(user), [user])
    if kind == "national_id":
        ident = _national_id(fake, locale)
        return Item("national_id", ident, [ident]) if ident else None
    raise ValueError(kind)


def keeper(kind: str, fake: Faker, rng: random.Random) -> str:
    if kind == "error_code":
        return rng.choice((fake.numerify("####"), fake.bothify("E-####"), fake.numerify("0x%#%#")))
    if kind == "version":
        return rng.choice(
            (
                f"{rng.randint(1, 19)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}",
            )
        )
    if kind == "amount":
        return str(fake.pricetag())
    if kind == "product":
        return f"{fake.color_name()!s} {str(fake.word()).capitalize()} {fake.bothify('?#00').upper()}"
    if kind == "word":
        # An ordinary English word or two, capitalized as a label in an interface ("Export", "Order
        # History"): the blind corpus's sentences are English whatever the locale.
        english = Faker("en_US")
        english.seed_instance(rng.randint(0, 10**9))
        words = [w.capitalize() for w in english.words(nb=rng.choice((1, 2)), unique=True)]
        while any(len(w) < 4 for w in words):
            words = [w.capitalize() for w in english.words(nb=len(words), unique=True)]
        return " ".join(words)
    if kind == "order_id":
        return fake.bothify("??-#####").upper()
    if kind == "weekday":
        # Not ``day_of_week()``: it draws a date up to today, so the corpus would change with the day.
        provider = next((p for p in fake.get_providers() if hasattr(p, "day_of_week")), None)
        names: dict[str, str] | None = getattr(provider, "DAY_NAMES", None)
        index = rng.randint(0, 6)
        english = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
        return names[str(index)] if names else english[index]
    raise ValueError(kind)


def _place(template: str, value: str, secrets: list[str]) -> tuple[str, list[list[int]]]:
    at = template.index("{v}")
    text = template.replace("{v}", value)
    spans = []
    for secret in secrets:
        offset = value.index(secret)
        spans.append([at + offset, at + offset + len(secret)])
    return text, spans


def generate(corpus: str) -> list[Text]:
    seed = SEEDS[corpus]
    pool = {"dev": 0, "report": 1}[corpus]  # each corpus its own sentence templates
    rng = random.Random(seed)
    texts: list[Text] = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed + LOCALES.index(locale))
        kinds = list(PII_TEMPLATES)
        for n in range(TEXTS_PER_LOCALE):
            kind = kinds[n % len(kinds)]
            item = draw(kind, fake, locale, rng)
            if item is None:
                item = draw("name", fake, locale, rng)
                assert item is not None
                kind = "name"
            language = "en"
            own = OWN_LANGUAGE.get(locale)
            foreign = FOREIGN_TEMPLATES.get(own or "", {})
            if own and kind in foreign and item.kind != "name_lower" and rng.random() < 0.5:
                language = own
                template = rng.choice(foreign[kind])
            else:
                template = rng.choice(PII_TEMPLATES[kind][pool])
            sentence, secret_spans = _place(template, item.value, item.secrets)
            keeper_kind = rng.choice(list(KEEPER_TEMPLATES))
            keep_value = keeper(keeper_kind, fake, rng)
            keep_sentence = rng.choice(KEEPER_TEMPLATES[keeper_kind][pool]).replace("{v}", keep_value)
            if rng.random() < 0.5:
                text = f"{sentence} {keep_sentence}"
                shift = 0
            else:
                text = f"{keep_sentence} {sentence}"
                shift = len(keep_sentence) + 1
            known = _owner(locale, rng)
            texts.append(
                Text(
                    id=f"{corpus}-{locale}-{n}",
                    locale=locale,
                    language=language,
                    text=text,
                    known=known,
                    planted=[
                        {
                            "kind": item.kind,
                            "value": item.value,
                            "secrets": [[a + shift, b + shift] for a, b in secret_spans],
                        }
                    ],
                    keepers=[{"kind": keeper_kind, "value": keep_value}],
                )
            )
    return texts


def _fill(
    template: str, values: dict[str, Item | str]
) -> tuple[str, list[tuple[Item, list[list[int]]]], list[tuple[str, str]]]:
    """The template with its placeholders replaced: (text, planted items with their secrets' spans,
    keepers as (slot, value))."""
    text = ""
    planted: list[tuple[Item, list[list[int]]]] = []
    keepers: list[tuple[str, str]] = []
    last = 0
    for match in re.finditer(r"\{(\w+)\}", template):
        text += template[last : match.start()]
        value = values[match.group(1)]
        if isinstance(value, Item):
            at = len(text)
            spans = []
            for secret in value.secrets:
                offset = value.value.index(secret)
                spans.append([at + offset, at + offset + len(secret)])
            planted.append((value, spans))
            text += value.value
        else:
            keepers.append((match.group(1), value))
            text += value
        last = match.end()
    return text + template[last:], planted, keepers


def generate_templated(corpus: str) -> list[Text]:
    """The blind or fresh corpus: ``draw`` and ``keeper`` values (the same code as the other corpora) in
    the templates of ``templates_<corpus>.py``, each text a PII sentence (maybe with more values and
    keepers) joined to a keeper sentence."""
    templates: ModuleType
    templates, texts_per_locale = TEMPLATED[corpus]
    seed = SEEDS[corpus]
    rng = random.Random(seed)
    kinds = list(dict.fromkeys(templates.PLANTED_SLOTS.values()))
    texts: list[Text] = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed + LOCALES.index(locale))
        for n in range(texts_per_locale):
            kind = kinds[n % len(kinds)]
            item = draw(kind, fake, locale, rng)
            if item is None:
                item = draw("name", fake, locale, rng)
                assert item is not None
            template = rng.choice(templates.PII_TEMPLATES[item.kind])
            keeper_kind = rng.choice(list(templates.KEEPER_TEMPLATES))
            keep_template = rng.choice(templates.KEEPER_TEMPLATES[keeper_kind])
            if rng.random() < 0.5:
                whole = template + rng.choice(templates.JOINERS) + keep_template
            else:
                whole = keep_template + rng.choice(templates.JOINERS) + template
            values: dict[str, Item | str] = {templates.OWN_SLOT[item.kind]: item}
            for slot in re.findall(r"\{(\w+)\}", whole):
                if slot in values:
                    continue
                if slot in templates.PLANTED_SLOTS:
                    other = draw(templates.PLANTED_SLOTS[slot], fake, locale, rng)
                    assert other is not None  # national ids are never another kind's extra value
                    values[slot] = other
                else:
                    values[slot] = keeper(templates.KEEPER_SLOTS[slot], fake, rng)
            text, planted, keepers = _fill(whole, values)
            known = _owner(locale, rng)
            texts.append(
                Text(
                    id=f"{corpus}-{locale}-{n}",
                    locale=locale,
                    language="en",
                    text=text,
                    known=known,
                    planted=[{"kind": i.kind, "value": i.value, "secrets": s} for i, s in planted],
                    keepers=[{"kind": templates.KEEPER_SLOTS[k], "value": v} for k, v in keepers],
                )
            )
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=tuple(SEEDS), help="generate only this corpus")
    args = parser.parse_args(argv)
    for corpus in [args.corpus] if args.corpus else SEEDS:
        texts = generate_templated(corpus) if corpus in TEMPLATED else generate(corpus)
        path = HERE / f"corpus-{corpus}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for text in texts:
                out.write(json.dumps(text.__dict__, ensure_ascii=False) + "\n")
        print(f"{path}: {len(texts)} texts")


if __name__ == "__main__":
    main()
