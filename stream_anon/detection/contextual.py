"""Detectors proved by their context or shape rather than a checksum: obfuscated emails, dates of birth,
profile URLs, street addresses and names written in another script than the text around them.

Each is one precompiled pattern behind a substring or character test, so a text that cannot hold its
entity costs a test. They implement ``validated.Detector`` and run with the validated detectors:

* ``GRAMMAR`` (obfuscated emails, dates next to a birth word, profile URLs) in the scan **and** the leak
  verifier: what they find is PII wherever it is, so a sanitized record holding one is stopped;
* ``TEXT_ONLY`` (street addresses, non-Latin-script names) in the scan and the audit only: they read
  English free text, and a kept structured field (a shop's address, a product name in Japanese) is not
  a leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

import regex

from stream_anon.detection.validated import DETECTORS, EMAIL_ADDRESS, DetectorSet, Finding

DATE_OF_BIRTH = "DATE_OF_BIRTH"
STREET_ADDRESS = "STREET_ADDRESS"
PROFILE_URL = "PROFILE_URL"
PERSON = "PERSON"


@cache
def _top_level_domains() -> frozenset[str]:
    """Single-label public suffixes (com, de, org, ...) from tldextract's bundled list (no download)."""
    import tldextract

    extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    extract("example.com")  # loads the snapshot
    return frozenset(t.lower() for t in extract.tlds if "." not in t and t.isascii())


_BRACKETED_AT = ("(at)", "[at]", "{at}", "<at>", "(@)", "[@]", "( at )", "[ at ]")


class ObfuscatedEmailDetector:
    """``anna at example dot com``, ``anna(at)example.com``, ``anna [at] gmail [dot] com``: an address
    with "at" or "dot" spelled out, whose last label is a registered top-level domain."""

    entity = EMAIL_ADDRESS
    window = None
    gate = ""
    keywords = ("dot", " at ", *_BRACKETED_AT)
    min_digits = 0
    _at = r"(?:\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*|\s+at\s+|\s*@\s*)"
    _dot = r"(?:\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+|\.)"
    # The verifier runs these over every string: the standard library's engine is the faster one here.
    _pattern = re.compile(
        rf"(?<![\w.+\-@])(?P<local>[\w+\-]+(?:\.[\w+\-]+)*)(?P<at>{_at})"
        rf"(?P<host>(?:[^\W_][\w\-]*{_dot})+)(?P<tld>[^\W\d_]{{2,24}})(?![\w\-])",
        re.IGNORECASE,
    )
    # "anna at example.com": the one spelling without a bracket or a "dot" (the gates below)
    _at_domain = re.compile(r"\sat\s+[\w\-]+\.[^\W\d_]{2}", re.IGNORECASE)

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        # " at " is common in free text: spelled that way, the address needs a domain right after it.
        low = text.lower()
        if (
            "dot" not in low
            and not any(m in low for m in _BRACKETED_AT)
            and (" at " not in low or self._at_domain.search(text, pos) is None)
        ):
            return
        end = len(text) if endpos is None else endpos
        for match in self._pattern.finditer(text, pos, end):
            if match["at"].strip() == "@" and "dot" not in match["host"].lower():
                continue  # a plain address: the email detector's
            if match["tld"].lower() not in _top_level_domains():
                continue
            yield Finding(self.entity, match.start(), match.end())


_MONTHS = (
    "jan(?:uary|vier|uar|\\.)?|feb(?:ruary|ruar|\\.)?|févr(?:ier)?|mar(?:ch|s|z|\\.)?|märz|apr(?:il|\\.)?|avr(?:il)?"
    "|may|mai|mei|jun(?:e|i|\\.)?|juin|jul(?:y|i|\\.)?|juil(?:let)?|aug(?:ust|\\.)?|août|sep(?:t|tember|tembre|\\.)?"
    "|oct(?:ober|obre|\\.)?|okt(?:ober)?|nov(?:ember|embre|\\.)?|dec(?:ember|\\.)?|dez(?:ember)?|déc(?:embre)?"
    "|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
    "|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre"
    "|janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro"
    "|januari|februari|maart|juni|juli|augustus|oktober"
)
_DATE = (
    r"(?:\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})|\d{4}[./\-]\d{1,2}[./\-]\d{1,2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|\.)?\s+(?:de\s+)?(?:{_MONTHS})\s+(?:de\s+)?\d{{4}}"
    rf"|(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)
# Words that make a date someone's birth date, in the locales' languages.
_BIRTH_WORDS = (
    r"born|birth|birthday|birthdate|b-?day|d\.?o\.?b\.?|date\s+of\s+birth|geboren|geburtsdatum|geburtstag"
    r"|n[ée]e?|naissance|nacid[oa]|nac[ií]|nacimiento|cumpleaños|nat[oa]|nascita|nascid[oa]|nascimento"
    r"|geboortedatum|urodzon[ya]|urodzenia|urodziny|född|födelsedatum|doğum|doğdum|dogum"
)


class DateOfBirthDetector:
    """A date up to a few words after a birth word: ``born 03/04/1947``, ``DOB: 1950-10-05``, ``né le 3
    avril 1951``, ``Geburtsdatum ist der 05.10.1950``. Other dates (an order's, an error code) stay."""

    entity = DATE_OF_BIRTH
    window = None
    gate = ""
    # Substrings of every birth word (a superset of the patterns' words): the verifier reads every
    # string, and nearly none holds one.
    keywords = ("born", "birth", "b-day", "bday", "dob", "d.o.b", "do.b", "d.ob", "geb", "né", "nee", "naiss",
                "nac", "cumple", "nato", "nata", "nasc", "urodz", "föd", "doğ", "dog")  # fmt: skip
    min_digits = 0
    _pattern = re.compile(
        rf"(?<!\w)(?:{_BIRTH_WORDS})(?!\w)[^\d\n.!?\x00]{{0,30}}?(?<!\d)(?P<date>{_DATE})(?!\d)",
        re.IGNORECASE,
    )
    # "Ich bin am 06-03-2008 geboren", "the 3 April 1951 I was born", "I entered 27-02-1990 as my date
    # of birth": the birth word after the date.
    _after = re.compile(
        rf"(?<![\d\w])(?P<date>{_DATE})(?!\d)[^\d\n.!?\x00]{{0,20}}?(?<!\w)(?:{_BIRTH_WORDS})(?!\w)",
        re.IGNORECASE,
    )

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        end = len(text) if endpos is None else endpos
        for pattern in (self._pattern, self._after):
            for match in pattern.finditer(text, pos, end):
                if _calendar_date(match.group("date")):
                    yield Finding(self.entity, match.start("date"), match.end("date"))


_NUMBERS = re.compile(r"\d+")


def _calendar_date(written: str) -> bool:
    """Whether a date written in numbers can be one: a month of 1-12 and a day of 1-31 in some order
    ("18.24.48" is a version next to a birth word, not a date). Dates with a month name pass."""
    numbers = [int(n) for n in _NUMBERS.findall(written)]
    if len(numbers) != 3:
        return True
    year_first = len(_NUMBERS.findall(written)[0]) == 4
    first, second = numbers[1:] if year_first else numbers[:2]
    return (1 <= first <= 12 and 1 <= second <= 31) or (1 <= second <= 12 and 1 <= first <= 31)


class ProfileUrlDetector:
    """URLs that name a person's account: ``https://github.com/jdoe``, ``…/in/jdoe``, ``…/@jdoe``,
    ``…/~jdoe``, ``…/users/jdoe``. The whole URL is the finding (its path is the username)."""

    entity = PROFILE_URL
    window = None
    gate = "/"
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _social = (
        r"(?:github|gitlab|twitter|x|instagram|facebook|fb|linkedin|medium|tiktok|youtube|reddit|pinterest"
        r"|threads|bsky|mastodon\.\w+|vk|t|snapchat|twitch|soundcloud|behance|dribbble|flickr|tumblr|quora)"
    )
    _pattern = regex.compile(
        rf"(?i)\bhttps?://(?:www\.|m\.|[a-z]{{2}}\.)?(?:{_social}\.(?:com|me|net|org|app|social|ru|co)"
        r"/(?:in/|u/|user/|users/|profile/|people/|channel/|@)?[\w.\-]{2,}"
        r"|[\w.\-]+\.[a-z]{2,24}/(?:@|~|in/|u/|user/|users/|profile/|people/|members/|author/)[\w.\-]{2,})"
        r"[^\s<>\"')\]\x00]*"
    )

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        if "://" not in text:
            return
        end = len(text) if endpos is None else endpos
        for match in self._pattern.finditer(text, pos, end):
            stop = match.end()
            while stop > match.start() and text[stop - 1] in ".,;:!?":
                stop -= 1
            yield Finding(self.entity, match.start(), stop)


# Street designators: the USPS's (Publication 28) for English, and the common ones of the locales'
# languages, before the name (``rue``, ``Via``, ``ul.``) or glued to its end (``-straße``, ``-vägen``).
_EN_TYPES = (
    "alley|annex|arcade|avenue|ave|bayou|beach|bend|bluffs?|bottom|boulevard|blvd|branch|bridge|brooks?"
    "|burgs?|bypass|camp|canyon|cape|causeway|center|centre|circles?|cliffs?|close|club|common|corners?"
    "|course|courts?|ct|coves?|creek|crescent|crest|crossing|crossroad|curve|dale|dam|divide|drives?|dr"
    "|estates?|expressway|extensions?|falls?|ferry|fields?|flats?|fords?|forest|forges?|forks?|fort"
    "|freeway|gardens?|gateway|glens?|greens?|groves?|harbors?|haven|heights|highway|hwy|hills?|hollow"
    "|inlet|islands?|isle|junctions?|keys?|knolls?|lakes?|land|landing|lane|ln|lights?|loaf|locks?|lodge"
    "|loop|mall|manors?|meadows?|mews|mills?|mission|motorway|mount|mountains?|neck|orchard|oval"
    "|overpass|park|parkway|pass|passage|path|pike|pines?|place|pl|plains?|plaza|points?|ports?"
    "|prairie|radial|ramp|ranch|rapids?|rest|ridges?|river|road|rd|route|row|rue|run|shoals?|shores?"
    "|skyway|springs?|spurs?|squares?|sq|station|stravenue|stream|street|st|streets|summit|terrace"
    "|throughway|trace|track|trafficway|trail|trailer|tunnel|turnpike|underpass|unions?|valleys?|viaduct"
    "|views?|village|villages|ville|vista|walk|wall|way|ways|wells?"
)
_UNIT = (
    r"(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|#|no\.?|piso|puerta|appartamento|interno|scala"
    r"|piano|apto\.?|lok\.?|m\.|étage|bloco|casa|sala|bl\.?)"
)
_TYPE_FIRST = (
    "rue|avenue|av\\.|bd|boulevard|chemin|impasse|allée|place|quai|route|cours|passage|square|calle|c/|avenida"
    "|avda\\.?|plaza|paseo|pasaje|cañada|acceso|carretera|vía|c\\.|camino|carrera|cuesta|ronda|travesía|glorieta"
    "|callejón|rambla|urbanización|bajada|subida|senda|polígono|barrio|prolongación|via|viale"
    "|piazza|piazzale|corso|vicolo|largo|strada|contrada|borgo|rotonda|incrocio|canale|stretto|vico|rua|travessa"
    "|praça|alameda|estrada|rodovia|vila|recanto|ladeira|lagoa|conjunto|setor|quadra|residencial|passarela"
    "|jardim|parque|loteamento|núcleo|vereda|campo|morro|sítio|chácara|esplanada|viela|praia|trecho|fazenda|lago|viaduto|vale|favela"
    "|pasadizo|vial|aeroporto|colônia|condomínio|distrito|estação|feira|pátio|trevo|área"
    "|ul\\.|ulica|pl\\.|aleja|al\\.|plac|osiedle|os\\.|skwer|bulwar"
)
_GLUED = (
    "straße|strasse|str\\.|weg|gasse|allee|platz|ring|damm|ufer|chaussee|steig|pfad|markt|hof|berg|graben"
    "|straat|laan|plein|singel|gracht|dreef|kade|park|dijk|pad|steeg|wal|baan|veld|hoven|erf|boulevard"
    "|vägen|gatan|gränd|stigen|backen|torget|allén|leden|väg|gata|vej|gade|veien|gaten"
)
# Designators that are not English words (and not names): they need no house number.
_NAMED_ONLY = (
    "rue|boulevard|chemin|allée|impasse|quai|calle|avenida|paseo|pasaje|camino|cañada|carretera|travesía|callejón"
    "|viale|piazza|corso|vicolo|rua|travessa|praça|alameda|estrada|rodovia|ulica|ul\\.|aleja|plac|pasadizo"
)
_WORD = r"[\p{L}][\p{L}\p{M}'’.\-]*"


def by_first_letter(alternation: str) -> str:
    """``alternation`` ("rue|route|avenue|...", each alternative starting with a literal letter) with the
    alternatives grouped under their first letter, in their order: ``r(?:ue|oute)|avenue``.

    The same matches: an alternative whose first letter differs from the text's fails at once, and those
    that share it are tried in the same order. But the engine (``regex``, case-insensitive) tries one
    group where a word begins instead of every alternative, which cut the street-address detector by a
    third. The letters must differ under case folding, which the tests check for the lists here. An
    alternative may hold groups of its own (``spoke\\s+(?:to|with)``): only top-level bars separate."""
    groups: dict[str, list[str]] = {}
    for alternative in alternatives(alternation):
        groups.setdefault(alternative[0].lower(), []).append(alternative[1:])
    return "|".join(
        regex.escape(first) + (rests[0] if len(rests) == 1 else f"(?:{'|'.join(rests)})")
        for first, rests in groups.items()
    )


def alternatives(alternation: str) -> list[str]:
    """The top-level alternatives of a pattern: split at bars outside groups, classes and escapes."""
    found: list[str] = []
    depth = start = at = 0
    while at < len(alternation):
        char = alternation[at]
        if char == "\\":
            at += 1  # the escaped character is literal
        elif char == "[":  # to the class's end; "]" first in it (after any "^") is a literal
            at += 2 if alternation.startswith("[^", at) else 1
            at += 1 if alternation.startswith("]", at) else 0
            while alternation[at] != "]":
                at += 2 if alternation[at] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            found.append(alternation[start:at])
            start = at + 1
        at += 1
    found.append(alternation[start:])
    return found


_DIGIT = re.compile(r"\d")
_NUMBER = r"\d{1,6}[a-zA-Z]?(?:\s*[/\-]\s*\d{1,5}[a-zA-Z]?)?"


class StreetAddressDetector:
    """Street addresses in the common forms of the locales: ``7631 Johnson Village Suite 690``,
    ``Flat 7, Jones Light``, ``Wesackstraße 26``, ``8, avenue Manon Gillet``, ``Viale Parisi, 171``,
    ``ul. Długa 5``, ``Furuvägen 63``: a house number and a street designator around one to four words."""

    entity = STREET_ADDRESS
    window = None
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _unit_tail = rf"(?:,?\s+{_UNIT}\s*\d{{1,5}}[a-zA-Z]?)*"
    _pattern = regex.compile(
        # 7631 Johnson Village Suite 690 / 177 阿部 Street / Flat 7, Jones Light
        rf"(?:(?<!\w)(?:flat|studio|apartment|unit)\s+\d{{1,4}}[a-zA-Z]?,?\s+|(?<![\w.,])\d{{1,6}}[a-zA-Z]?,?\s+)"
        rf"(?:(?-i:[\p{{Lu}}\p{{Lo}}])[\p{{L}}\p{{M}}'’.\-]*\s+){{1,4}}(?:{by_first_letter(_EN_TYPES)})s?\b\.?{_unit_tail}"
        # 8, avenue Manon Gillet / Cuesta de Florinda Pino 81 Apt. 66 / Viale Parisi, 171 / ul. Długa 5
        rf"|(?:(?<![\w.,])\d{{1,5}}(?:bis|ter)?,?\s+)?(?<!\w)(?:{by_first_letter(_TYPE_FIRST)})(?!\w)\s*"
        rf"(?:{_WORD}\s+){{0,4}}?{_WORD},?\s*(?:(?<!\d){_NUMBER}(?!\d){_unit_tail})"
        rf"|(?<![\w.,])\d{{1,5}}(?:bis|ter)?,?\s+(?:{by_first_letter(_TYPE_FIRST)})(?!\w)\s*(?:{_WORD}\s+){{0,3}}(?-i:\p{{Lu}})[\p{{L}}\p{{M}}'’\-]+"
        # rue de Rivoli / boulevard Thomas Pereira / calle Mayor: a designator that is no English word,
        # before a capitalized name, needs no number
        rf"|(?<!\w)(?:{by_first_letter(_NAMED_ONLY)})\s+(?:(?:de|del|de\s+la|du|des|da|do|dos|das|di|della)\s+)?"
        rf"(?-i:\p{{Lu}})[\p{{L}}\p{{M}}'’\-]+(?:\s+(?-i:\p{{Lu}})[\p{{L}}\p{{M}}'’\-]+){{0,2}}"
        rf"(?:,?\s*(?<!\d){_NUMBER}(?!\d){_unit_tail})?"
        # Wesackstraße 26-83 / Lindseysingel 6 / Furuvägen 63 / Karl-Marx-Str. 5
        rf"|(?<!\w)(?-i:\p{{Lu}})[\p{{L}}\p{{M}}\-]*(?:{by_first_letter(_GLUED)})\s*,?\s*(?<!\d){_NUMBER}(?!\d){_unit_tail}",
        regex.IGNORECASE,
    )
    # What the pattern needs, each test far cheaper than the pattern: a designator that needs no number,
    # or a digit and a designator as one of the branches has it (a word of its own, a word after a
    # space, or the end of a word before the number).
    _named_only = regex.compile(rf"(?<!\w)(?:{by_first_letter(_NAMED_ONLY)})(?!\w)", regex.IGNORECASE)
    _designators = (
        regex.compile(rf"(?<!\w)(?:{by_first_letter(_TYPE_FIRST)})(?!\w)", regex.IGNORECASE),
        regex.compile(rf"\s(?:{by_first_letter(_EN_TYPES)})s?\b", regex.IGNORECASE),
        # searched from the end: the engine meets the number first, not every letter of every word
        regex.compile(rf"(?r)(?:{by_first_letter(_GLUED)})\s*,?\s*\d", regex.IGNORECASE),
    )

    def may_hold_an_address(self, text: str, pos: int = 0, endpos: int | None = None) -> bool:
        """False only where the pattern cannot match."""
        end = len(text) if endpos is None else endpos
        if _DIGIT.search(text, pos, end) is None:
            return self._named_only.search(text, pos, end) is not None
        return any(designator.search(text, pos, end) is not None for designator in self._designators)

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        end = len(text) if endpos is None else endpos
        if not self.may_hold_an_address(text, pos, end):
            return
        for match in self._pattern.finditer(text, pos, end):
            stop = match.end()
            while stop > match.start() and text[stop - 1] in ".,; ":
                stop -= 1
            yield Finding(self.entity, match.start(), stop)


_OTHER_SCRIPT = (
    r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Devanagari}\p{Bengali}\p{Gurmukhi}\p{Gujarati}"
    r"\p{Tamil}\p{Telugu}\p{Kannada}\p{Malayalam}\p{Arabic}\p{Hebrew}\p{Thai}\p{Ethiopic}\p{Georgian}\p{Armenian}"
)


class OtherScriptNameDetector:
    """In text written in Latin script, a short run of words in a non-Latin script (Han, kana, Hangul,
    Devanagari and other Indic scripts, Arabic, Hebrew, Thai, ...) is a name, or an address (with the
    house number in front). Text written mostly in such a script is left to the other detectors."""

    entity = PERSON
    window = None
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _run = regex.compile(
        rf"(?:(?<![\w.,/])\d{{1,6}}(?:[/\-]\d{{1,6}})?,?\s+)?[{_OTHER_SCRIPT}](?:[{_OTHER_SCRIPT}\p{{M}}’'·・ー]|[A-Za-z0-9]+(?=[{_OTHER_SCRIPT}]))*"
        rf"(?:[ \t]+[{_OTHER_SCRIPT}][{_OTHER_SCRIPT}\p{{M}}’'·・ー]*){{0,5}}"
    )
    _other_word = regex.compile(rf"[{_OTHER_SCRIPT}][{_OTHER_SCRIPT}\p{{M}}]*")
    _spaced_word = regex.compile(r"\S+")
    _letters = regex.compile(r"\p{L}")
    _product = regex.compile(r"\s+[A-Z]{0,3}-?\d{2,5}[A-Za-z]{0,2}\b")
    # Weekdays and months: Japanese 曜日, Chinese 星期/礼拜/周 and 月, Hindi -वार and महीने names,
    # Arabic weekdays (names written with the article).
    _calendar = regex.compile(
        r".*曜日?|(?:星期|礼拜|周)[一二三四五六日天]|[一二三四五六七八九十]{1,2}月|\p{Devanagari}+वार"
        r"|ال(?:أحد|إثنين|اثنين|ثلاثاء|أربعاء|خميس|جمعة|سبت)|(?:يوم\s+)?(?:الأحد|الاثنين)"
    )
    _latin_word_or_number = regex.compile(r"\p{Latin}+|\d+")

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        if text.isascii():
            return
        end = len(text) if endpos is None else endpos
        # Words, not letters: a Devanagari name takes twice the code points of a Latin one. The text is
        # written in the other script when its words outnumber the rest (Latin words and numbers).
        other = len(self._other_word.findall(text, pos, end))
        if not other or other > len(self._latin_word_or_number.findall(text, pos, end)):
            return
        for match in self._run.finditer(text, pos, end):
            if self._product.match(text, match.end()):
                continue  # a word of a product's name
            # Without a weekday or month at either end (木曜日, 星期二, सोमवार): "唐玉英 星期四" is a name
            # and a day.
            words = list(self._spaced_word.finditer(match.group()))
            while words and self._calendar.fullmatch(words[-1].group()):
                words.pop()
            while words and self._calendar.fullmatch(words[0].group()):
                words.pop(0)
            # A word of more than eight letters is a phrase written without spaces ("注文した商品が
            # まだ届いていません"), not a name.
            if words and max(len(self._letters.findall(w.group())) for w in words) <= 8:
                yield Finding(self.entity, match.start() + words[0].start(), match.start() + words[-1].end())


# Capitalized words that start a sentence or stand in a title without being a name.
_NOT_NAME_WORDS = frozenset(
    [
        "yesterday",
        "today",
        "tomorrow",
        "tonight",
        "nobody",
        "somebody",
        "someone",
        "everyone",
        "everybody",
        "anyone",
        "order",
        "orders",
        "reference",
        "ticket",
        "case",
        "error",
        "update",
        "version",
        "release",
        "customer",
        "customers",
        "service",
        "services",
        "support",
        "team",
        "sales",
        "billing",
        "account",
        "accounts",
        "refund",
        "refunds",
        "invoice",
        "delivery",
        "shipping",
        "please",
        "thanks",
        "thank",
        "hello",
        "hi",
        "hey",
        "dear",
        "regards",
        "best",
        "kind",
        "sincerely",
        "cheers",
        "sorry",
        "still",
        "also",
        "then",
        "now",
        "again",
        "so",
        "well",
        "yes",
        "okay",
        "ok",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sir",
        "madam",
    ]
)
_PARTICLES = frozenset(
    [
        "van",
        "von",
        "der",
        "den",
        "de",
        "del",
        "della",
        "da",
        "di",
        "du",
        "la",
        "le",
        "dos",
        "das",
        "ter",
        "ten",
        "bin",
        "ibn",
        "al",
        "el",
    ]
)
_DETERMINERS = frozenset(
    ["the", "my", "your", "our", "his", "her", "their", "its", "a", "an", "this", "that", "these", "those"]
)


# Up to two words and a model code after a span ("... Boire K400"): the span is part of a product's name.
_BEFORE_MODEL_CODE = regex.compile(
    r"(?:[ \t]+[\p{L}\p{M}'’\-]+){0,2}[ \t]+[A-Z]{0,3}-?\d{2,5}[A-Za-z]{0,2}\b"
)


class CapitalizedNameDetector:
    """Two or three capitalized words in a row (with name particles between them): ``Francesca North``,
    ``Inger Eriksson``, ``Ludwig van der Berg``. Not after a determiner ("the Galaxy Tab"), not before a
    model code ("Teal Neus C800"), not made of stop words, weekdays or ticket words ("Order", "Support")."""

    entity = PERSON
    window = None
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _pattern = regex.compile(
        r"(?<![\p{L}\p{M}'’\-.])(?:\p{Lu}[\p{Ll}\p{M}'’]+(?:-\p{Lu}?[\p{Ll}\p{M}'’]+)*)"
        r"(?:[ \t]+(?:(?:van|von|der|den|de|del|della|da|di|du|la|le|dos|das|ter|ten|bin|ibn|al|el)[ \t]+)*"
        r"\p{Lu}[\p{Ll}\p{M}'’]+(?:-\p{Lu}?[\p{Ll}\p{M}'’]+)*){1,3}(?![\p{L}\p{M}])"
    )
    _word = regex.compile(r"[\p{L}\p{M}'’\-]+")
    _before = regex.compile(r"(\p{L}+)[ \t]+$")
    _product = _BEFORE_MODEL_CODE

    def __init__(self) -> None:
        from spacy.lang.en.stop_words import STOP_WORDS

        self._common = _NOT_NAME_WORDS | frozenset(STOP_WORDS)

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        end = len(text) if endpos is None else endpos
        for match in self._pattern.finditer(text, pos, end):
            words = list(self._word.finditer(match.group()))
            while words and words[0].group().casefold() in self._common:
                words.pop(0)  # "Yesterday Inger Eriksson": the name starts after the sentence's word
            if len(words) < 2 or any(w.group().casefold() in self._common for w in words):
                continue
            start = match.start() + words[0].start()
            before = self._before.search(text, max(pos, start - 20), start)
            if before is not None and before.group(1).casefold() in _DETERMINERS:
                continue
            if self._product.match(text, match.end()):
                continue
            frequencies = _english_frequencies()
            if all(frequencies.get(w.group().casefold(), 0.0) >= _COMMON for w in words):
                continue  # "Google Pay", "Customer Care": common English words; "John Smith" is NER's
            yield Finding(self.entity, start, match.end())


@cache
def _english_frequencies() -> dict[str, float]:
    """How often each of the ~29,000 commonest English words is written (wordfreq's "small" list, shipped
    in its package: about 19 MB once loaded, on the first lower-case name candidate)."""
    from wordfreq import get_frequency_dict

    return dict(get_frequency_dict("en", wordlist="small"))


# Frequencies as wordfreq's Zipf scale: 3.5 is three times per ten million words, 5.5 once per three
# thousand.
_RARE = 10**-5.5
_VERY_COMMON = 10**-3.5
_COMMON = 10**-4.5


# Words that name a person's role or introduce one: after one, a lower-case name needs only words that
# are not among the commonest.
_INTRODUCERS = (
    r"colleague|co-?worker|neighbou?r|tenant|landlord|landlady|agent|rep"
    r"|representative|technician|courier|driver|manager|supervisor|friend|wife|husband|partner|son"
    r"|daughter|mother|father|mom|mum|dad|brother|sister|boss|cousin|uncle|aunt|roommate|flatmate"
    r"|assistant|owner|nurse|doctor|teacher|ask|asked|told\s+by|spoke\s+(?:to|with)|talked\s+(?:to|with)"
    r"|signed(?:\s+for)?\s+by|named|called|my\s+name\s+is|this\s+is|dear|hi|hello|hey|thanks"
    # a form's label or a message's addressee: "name: ...", "recipient - ...", "tell ... that"
    r"|full\s+name|first\s+name|last\s+name|user\s+name|name|contact|recipient|addressee|sender|customer"
    r"|client|patient|tell|thank|remind|email|e-mail|text|message|ping|call|cc|attn"
    # an account's or a card's holder, someone added to an account
    r"|holder|cardholder|add|added"
)
# Words a name often follows.
_NAME_FOLLOWS = (
    r"to|with|by|and|from|for|is|am|i'm|it's|its|yesterday|today|tomorrow|when|because|but|so|then"
    r"|that|said|told|met|saw|emailed|texted|paid|thanked|contacted|visited|informed|under|whoever"
)


class LowercaseNameDetector:
    """Names written in lower case: two or three words after a word that introduces a person ("spoke to
    zeynep hübel", "my colleague azeglio castioni", "signed for by brenda cardoso", "name: pietro
    geisler"), before a predicate that only a person takes ("coluccio badoer and i share", "natalie hale
    said"), or starting a sentence, that are not ordinary English: none is a stop word, at least one is
    rare in English (not among its ~29,000 commonest words, or nearly so) and none is among its
    commonest ("tech support", "accounting department" stay); after a word that names a role ("my
    neighbour kate wells") or before a person's predicate, none among the ~8,000 commonest is enough. A
    sentence start needs every word to be rare. In a text written in English, two rare words in a row
    are a name wherever they stand ("can someone other than erwin oestrovsky help")."""

    entity = PERSON
    window = None
    gate = ""
    keywords: tuple[str, ...] = ()
    min_digits = 0
    _word = r"\p{Ll}[\p{Ll}\p{M}'’\-]+"
    _pattern = regex.compile(
        # Where a match can begin at all (a word, or the punctuation that starts a sentence or a clause):
        # the engine passes over every other position without trying the word lists.
        r"(?=\w|[.!?;\n\-–—/|])"
        # A word that names a person's role or introduces one (strong), or a word a name often follows.
        rf"(?:(?:(?P<strong>(?i:\b(?:{by_first_letter(_INTRODUCERS)})))"
        rf"|(?i:\b(?:{by_first_letter(_NAME_FOLLOWS)})))"
        # then a space, a comma or colon, or an opening bracket or quote: "the driver (amber macdonald)"
        r"(?:[ \t]*[,:\-–—]?[ \t]+|[ \t]*[,:]?[ \t]*[(\[\"“‘'][ \t]*)"
        # or the start of a sentence, a line or a clause set off by a dash, a slash or a semicolon
        r"|(?P<start>^|[.!?;][ \t]+|\n[ \t]*|(?<=[ \t])(?:--?|–|—|/|\|)[ \t]+))"
        rf"(?P<name>{_word}(?:[ \t]+{_word}){{1,3}})"
    )
    # A predicate only a person takes, after two lower-case words (strong), or one that things take
    # too ("the error message said"), which needs a rare word.
    # Searched first (a regex that tries every pair of words before testing for a predicate costs more
    # than the rest of the detector), then the two words before it.
    _predicate = regex.compile(
        r"[ \t]+(?:(?P<strong>and[ \t]+(?:i|me|my)|told|promised|hung[ \t]+up|replied"
        # "bob marley from support": someone from a company's department
        r"|from[ \t]+(?:the[ \t]+|your[ \t]+|our[ \t]+)?(?:support|customer|billing|sales|accounting|accounts"
        r"|hr|help|service|tech|technical|office|team|warehouse|branch|bank|delivery|shipping))"
        r"|said|says|wrote|answered|called[ \t]+me|emailed|texted|is[ \t]+my|was[ \t]+my)(?!\w)"
        r"|(?<=\p{Ll})(?:'s|’s)(?!\w)"
    )
    _two_words_before = regex.compile(rf"(?<![\p{{L}}\p{{M}}'’\-])({_word})[ \t]+({_word})$")
    _words = regex.compile(r"[\p{L}\p{M}'’\-]+")
    # A lower-case word standing alone: not part of an address, a path, an identifier or a URL.
    _lower_word = regex.compile(
        r"(?<![\p{L}\p{M}\d'’\-@./_:#])\p{Ll}[\p{Ll}\p{M}]*[\p{Ll}\p{M}](?![\p{L}\p{M}\d@_/'’\-]|\.\w)"
    )

    def __init__(self) -> None:
        from spacy.lang.en.stop_words import STOP_WORDS

        self._stop = (_NOT_NAME_WORDS | frozenset(STOP_WORDS)) - _PARTICLES

    def find(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Finding]:
        end = len(text) if endpos is None else endpos
        frequencies: dict[str, float] | None = None
        for match in self._pattern.finditer(text, pos, end, overlapped=True):
            words = []
            for word in self._words.finditer(match.group("name")):
                if word.group() in self._stop:
                    break
                words.append(word)
            words = words[:5]
            while words and words[-1].group() in _PARTICLES:
                words.pop()  # "jan van der spaendonck" ends at the last name, not at a particle
            if len(words) < 2:
                continue
            if frequencies is None:
                frequencies = _english_frequencies()
            seen = [0.0 if w.group() in _PARTICLES else frequencies.get(w.group(), 0.0) for w in words]
            while len(words) > 2 and seen[-1] >= _RARE:  # "edmundo guitart promised": the verb is not
                words.pop()
                seen.pop()
            at_start = match.group("start") is not None
            if any(f >= _VERY_COMMON for f in seen):
                continue
            # After a word that introduces a person, names of common words ("kate wells") count too,
            # as long as none is among the commonest (~8,000) English words ("tech support").
            strong = match.group("strong") is not None and all(f < _COMMON for f in seen)
            if not strong and not any(f < _RARE for f in seen):
                continue
            if at_start and not all(f < _RARE for f in seen):
                continue
            base = match.start("name")
            yield Finding(self.entity, base + words[0].start(), base + words[-1].end())
        if frequencies is None:
            frequencies = _english_frequencies()
        yield from self._before_predicate(text, pos, end, frequencies)
        yield from self._rare_pairs(text, pos, end, frequencies)

    def _before_predicate(
        self, text: str, pos: int, end: int, frequencies: dict[str, float]
    ) -> Iterator[Finding]:
        """ "natalie hale said", "mesut pärtzelt and i share": two words before a person's predicate."""
        for cue in self._predicate.finditer(text, pos, end):
            match = self._two_words_before.search(text, max(pos, cue.start() - 80), cue.start())
            if match is None:
                continue
            words = [match.group(1), match.group(2)]
            if any(w in self._stop for w in words):
                continue
            seen = [frequencies.get(w, 0.0) for w in words]
            if any(f >= _VERY_COMMON for f in seen):
                continue
            strong = cue.group("strong") is not None and all(f < _COMMON for f in seen)
            if strong or any(f < _RARE for f in seen):
                yield Finding(self.entity, match.start(), match.end())

    def _rare_pairs(self, text: str, pos: int, end: int, frequencies: dict[str, float]) -> Iterator[Finding]:
        """Two or three lower-case words in a row, each rare in English, in a text whose words are
        mostly English: a name, whatever stands around it. Text in another language is left alone (its
        words are rare in English without being names)."""
        words = list(self._lower_word.finditer(text, pos, end))
        if len(words) < 2:
            return
        seen = [frequencies.get(w.group(), 0.0) for w in words]
        rare = [f < _RARE and w.group() not in self._stop for w, f in zip(words, seen, strict=True)]
        if sum(rare) < 2 or 3 * sum(f >= _RARE for f in seen) < 2 * len(words):
            return  # under two thirds of its words are English ones
        at = 0
        while at < len(words) - 1:
            last = at
            while (
                last + 1 < len(words)
                and last - at < 2
                and rare[last]
                and rare[last + 1]
                and _only_blanks(text, words[last].end(), words[last + 1].start())
            ):
                last += 1
            if last > at and not _BEFORE_MODEL_CODE.match(text, words[last].end()):
                # not "Vert océan moyen Boire K400": lower-case words of a product's name
                yield Finding(self.entity, words[at].start(), words[last].end())
            at = last + 1


def _only_blanks(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is one run of spaces or tabs (words in a row, not across a comma)."""
    return end > start and end - start <= 2 and text[start:end].strip(" \t") == ""


GRAMMAR = (ObfuscatedEmailDetector(), DateOfBirthDetector(), ProfileUrlDetector())
TEXT_ONLY = (
    StreetAddressDetector(),
    OtherScriptNameDetector(),
    CapitalizedNameDetector(),
    LowercaseNameDetector(),
)


# In priority order (where two findings overlap the earlier detector's wins): what the leak verifier
# runs over every sanitized string, and what the scan runs over free text.
VERIFIER = DetectorSet(DETECTORS + GRAMMAR)
SCAN = DetectorSet(DETECTORS + GRAMMAR + TEXT_ONLY)
