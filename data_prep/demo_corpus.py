"""The generated demo corpus: a German-English phrasebook plus templated sentences.

Templates cover articles, the three cases, plurals, weak nouns, verb conjugation, German
adjective endings (weak after der, mixed after ein/kein/mein, strong without article), negation
with nicht/kein, questions and verb-second order. Deterministic for (n_pairs, seed); valid and
test hold templated sentences that do not occur in train.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from data_prep import demo_words as W
from data_prep.demo_phrasebook import phrasebook, time_adverbs
from data_prep.sources import DataError

G = ("m", "f", "n", "pl")
DEF = {"nom": "der die das die", "acc": "den die das die", "dat": "dem der dem den"}
EIN = {"nom": "- e - e", "acc": "en e - e", "dat": "em er em en"}  # ein/kein/mein + ending
WEAK = {"nom": "e e e en", "acc": "en e e en", "dat": "en en en en"}  # adjective after der/die/das
MIXED = {"nom": "er e es en", "acc": "en e es en", "dat": "en en en en"}  # after ein/kein/mein
STRONG = {"nom": "e e e e", "acc": "e e e e", "dat": "en en en en"}  # no article (plural only)
CONTRACT = {"in dem": "im", "an dem": "am", "zu dem": "zum", "zu der": "zur", "in das": "ins"}
PRONOUNS = ["ich I 0", "du you 1", "er he 2", "sie she 2", "wir we 3", "ihr you 4", "sie they 5"]
POSSESSIVES = ["mein my", "dein your", "sein his", "ihr her", "unser our"]
POSITIONS = ["auf|on", "unter|under", "neben|next to", "hinter|behind", "vor|in front of"]
BE = (["bin", "bist", "ist", "sind", "seid", "sind"], ["am", "are", "is", "are", "are", "are"])
NUMBERS = W.table(W.NUMBERS)[2:13]  # zwei .. zwölf


def ending(table: dict[str, str], case: str, g: str) -> str:
    return table[case].split()[G.index(g)].strip("-")


@dataclass(frozen=True)
class Noun:
    de: str
    gender: str  # m f n
    weak: bool  # weak masculine: the oblique singular equals the plural (den Jungen)
    pl: str
    en: str
    en_pl: str


@dataclass(frozen=True)
class Verb:
    de: list[str]  # ich du er/sie wir ihr sie
    en: str
    en3: str
    animals: bool  # animals can be the subject
    objects: str

    def finite(self, person: int) -> tuple[str, str]:
        return self.de[person], self.en3 if person == 2 else self.en


@dataclass(frozen=True)
class Phrase:
    de: str
    en: str
    person: int = 2  # 0-5: ich du er/sie wir ihr sie


@cache
def lexicon() -> tuple[dict[str, list[Noun]], dict[str, list[list[str]]], list[Verb]]:
    nouns = {
        cat: [Noun(de, g[0], g.endswith("*"), pl, en, en_pl) for de, g, pl, en, en_pl in W.table(t)]
        for cat, t in W.NOUNS.items()
    }
    adjectives = {cat: W.table(t) for cat, t in W.ADJECTIVES.items()}
    verbs = [Verb(de.split(), en, en3, s == "a", o) for de, en, en3, s, o in W.table(W.VERBS)]
    return nouns, adjectives, verbs


def adjective(rng: random.Random, cat: str) -> list[str]:
    """[predicative, attributive stem, English] fitting a noun category."""
    _, adjectives, _ = lexicon()
    groups = {
        "person": "animate",
        "animal": "animate color",
        "food": "food",
        "readable": "readable",
    }
    return rng.choice(
        [a for g in groups.get(cat, "thing color").split() for a in adjectives[g]]
        + adjectives["any"]
    )


def noun_phrase(rng: random.Random, cat: str, case: str, plural: bool, det: str) -> Phrase:
    """German NP in `case` and its English. det: def | indef | poss | kein | num."""
    n = rng.choice(lexicon()[0][cat])
    plural = plural or det == "num"
    g = "pl" if plural else n.gender
    adj = adjective(rng, cat) if rng.random() < 0.4 else None
    if det == "def":
        art, en_art, table = DEF[case].split()[G.index(g)], "the", WEAK
    elif det == "num":
        (art, en_art), table = rng.choice(NUMBERS), STRONG
    elif det == "indef" and plural:
        art, en_art, table = "", "", STRONG
    else:
        stem, en_art = (
            rng.choice(POSSESSIVES).split()
            if det == "poss"
            else ("kein" if det == "kein" else "ein", "a")
        )
        art, table = stem + ending(EIN, case, g), MIXED
        en_art = "any" if det == "kein" and plural else "" if det == "indef" and plural else en_art
    word = n.pl if plural or (n.weak and case != "nom") else n.de
    word += "n" if plural and case == "dat" and not word.endswith(("n", "s")) else ""
    en = n.en_pl if plural else n.en
    en = f"{adj[2]} {en}" if adj else en
    en_art = "an" if en_art == "a" and en[0] in "aeiou" else en_art
    de = " ".join(filter(None, [art, adj[1] + ending(table, case, g) if adj else "", word]))
    return Phrase(de, f"{en_art} {en}".strip(), 5 if plural else 2)


def prep_phrase(rng: random.Random, prep: str, cat: str, case: str = "dat") -> Phrase:
    """'unter|under' + a definite or indefinite NP, with German contractions (im, zum, ins)."""
    de_prep, en_prep = prep.split("|")
    np_ = noun_phrase(rng, cat, case, rng.random() < 0.15, rng.choice(["def", "def", "indef"]))
    head, _, rest = np_.de.partition(" ")
    de = f"{CONTRACT.get(f'{de_prep} {head}', f'{de_prep} {head}')} {rest}"
    return Phrase(de, f"{en_prep} {np_.en}")


def subject(rng: random.Random, animals: bool) -> Phrase:
    r = rng.random()
    if r < 0.25:
        de, en, person = rng.choice(PRONOUNS).split()
        return Phrase(de, en, int(person))
    if r < 0.4:
        name = rng.choice(W.FIRST_NAMES.split())
        return Phrase(name, name)
    cat = "animal" if animals and rng.random() < 0.4 else "person"
    return noun_phrase(
        rng, cat, "nom", rng.random() < 0.3, rng.choice(["def", "def", "indef", "poss"])
    )


def objects(rng: random.Random, verb: Verb, dets: list[str]) -> Phrase:
    """The verb's objects; `dets` are the determiners allowed on the (last) object."""
    kind = verb.objects.lstrip("?")
    if not kind or verb.objects.startswith("?") and rng.random() < 0.4:
        return Phrase("", "")
    if kind == "to":
        return prep_phrase(rng, "in|to", "place", case="acc")
    cat = rng.choice(["person", "person", "animal"])
    person = noun_phrase(rng, cat, "dat", rng.random() < 0.2, rng.choice(["def", "poss"]))
    if kind == "dat":
        return person
    cat = rng.choice(["thing", "food", "readable"] if kind == "give" else kind.split())
    thing = noun_phrase(rng, cat, "acc", rng.random() < 0.25, rng.choice(dets))
    if kind == "give":
        return Phrase(f"{person.de} {thing.de}", f"{person.en} {thing.en}")
    return thing


def adverbial(rng: random.Random, verb: Verb) -> Phrase:
    """Optional place / position / company phrase after the objects."""
    r = rng.random()
    if verb.objects.endswith("to") or r < 0.45:
        return Phrase("", "")
    if r < 0.75:
        return prep_phrase(rng, "in|in", "place")
    if verb.objects in ("", "?food", "?readable"):
        return prep_phrase(
            rng,
            rng.choice(POSITIONS if r < 0.9 else ["mit|with"]),
            "furniture" if r < 0.9 else rng.choice(["person", "animal"]),
        )
    return Phrase("", "")


def clause_sentence(rng: random.Random) -> tuple[str, str]:
    """Statement, negation, yes/no question or fronted time adverbial around one verb."""
    verb = rng.choice(lexicon()[2])
    subj = subject(rng, verb.animals)
    r = rng.random()
    negated = r < 0.2
    dets = (
        (["kein"] if rng.random() < 0.5 else ["def", "poss"])
        if negated
        else ["def", "indef", "poss"]
    )
    obj, extra = objects(rng, verb, dets), adverbial(rng, verb)
    de_verb, en_verb = verb.finite(subj.person)
    do = "does" if subj.person == 2 else "do"
    if negated:  # "keinen Hund" or "nicht" (before a direction, else after the objects)
        kein = any(w.startswith("kein") for w in obj.de.split())
        parts = [subj.de, de_verb, obj.de, "" if kein else "nicht", extra.de]
        if verb.objects.endswith("to"):
            parts[2:4] = parts[3], parts[2]
        de = " ".join(parts)
        return finish(de, f"{subj.en} {do} not {verb.en} {obj.en} {extra.en}", ".")
    if r < 0.35:
        de = f"{de_verb} {subj.de} {obj.de} {extra.de}"
        return finish(de, f"{do} {subj.en} {verb.en} {obj.en} {extra.en}", "?")
    if r < 0.5:
        time_de, time_en = rng.choice(time_adverbs())
        de = f"{time_de} {de_verb} {subj.de} {obj.de} {extra.de}"
        return finish(de, f"{time_en} {subj.en} {en_verb} {obj.en} {extra.en}", ".")
    return finish(
        f"{subj.de} {de_verb} {obj.de} {extra.de}", f"{subj.en} {en_verb} {obj.en} {extra.en}", "."
    )


def be_sentence(rng: random.Random) -> tuple[str, str]:
    """'Das Haus ist (nicht) groß.', 'Ist der Hund müde?', 'Das Buch ist auf dem Tisch.',
    'Wo sind die Kinder?', 'Ich habe drei rote Äpfel.', 'Der Ball gehört dem Jungen.'"""
    if rng.random() < 0.3:
        subj, cat = subject(rng, animals=True), "person"
    else:
        cat = rng.choice(["person", "animal", "thing", "food", "readable", "clothing"])
        det = rng.choice(["def", "def", "indef", "poss"])
        subj = noun_phrase(rng, cat, "nom", rng.random() < 0.3, det)
    de_be, en_be = BE[0][subj.person], BE[1][subj.person]
    r = rng.random()
    if r < 0.5:
        adj = adjective(rng, cat)
        nicht = ("nicht ", "not ") if r < 0.12 else ("", "")
        if r > 0.38:
            return finish(f"{de_be} {subj.de} {adj[0]}", f"{en_be} {subj.en} {adj[2]}", "?")
        return finish(
            f"{subj.de} {de_be} {nicht[0]}{adj[0]}", f"{subj.en} {en_be} {nicht[1]}{adj[2]}", "."
        )
    if r < 0.7:
        where = prep_phrase(rng, rng.choice(POSITIONS), "furniture")
        return finish(f"{subj.de} {de_be} {where.de}", f"{subj.en} {en_be} {where.en}", ".")
    if r < 0.8:
        return finish(f"wo {de_be} {subj.de}", f"where {en_be} {subj.en}", "?")
    if r < 0.9:
        things = noun_phrase(rng, rng.choice(["animal", "thing", "food"]), "nom", True, "num")
        place = prep_phrase(rng, "in|in", "place")
        return finish(f"{place.de} sind {things.de}", f"there are {things.en} {place.en}", ".")
    thing = noun_phrase(
        rng, rng.choice(["thing", "readable", "clothing"]), "nom", rng.random() < 0.3, "def"
    )
    owner = noun_phrase(rng, "person", "dat", rng.random() < 0.2, rng.choice(["def", "poss"]))
    verb = ("gehört", "belongs") if thing.person == 2 else ("gehören", "belong")
    return finish(f"{thing.de} {verb[0]} {owner.de}", f"{thing.en} {verb[1]} to {owner.en}", ".")


def finish(de: str, en: str, mark: str) -> tuple[str, str]:
    """Collapse spaces, capitalize the first letter, add the final punctuation."""
    de, en = " ".join(de.split()), " ".join(en.split())
    return de[0].upper() + de[1:] + mark, en[0].upper() + en[1:] + mark


def demo_splits(n_pairs: int, src_lang: str = "de", tgt_lang: str = "en", seed: int = 1234) -> dict:
    """{'train'|'valid'|'test': (source sentences, target sentences)}; n_pairs training pairs."""
    if (src_lang, tgt_lang) not in (("de", "en"), ("en", "de")):
        raise DataError(f"source: demo is German-English; got {src_lang}->{tgt_lang}")
    rng = random.Random(seed)
    held_out = min(1000, max(20, n_pairs // 20))
    phrases = phrasebook(rng, reps=max(3, min(50, int(0.5 * n_pairs / 250))))[: n_pairs // 3]
    seen = {de for de, _ in phrases}
    templated: list[tuple[str, str]] = []
    while len(templated) < n_pairs - len(phrases) + 2 * held_out:
        pair = be_sentence(rng) if rng.random() < 0.3 else clause_sentence(rng)
        if pair[0] not in seen:
            seen.add(pair[0])
            templated.append(pair)
    train = phrases + templated[2 * held_out :]
    rng.shuffle(train)
    splits = {
        "train": train,
        "valid": templated[:held_out],
        "test": templated[held_out : 2 * held_out],
    }
    flip = src_lang == "en"
    return {k: ([p[flip] for p in v], [p[1 - flip] for p in v]) for k, v in splits.items()}
