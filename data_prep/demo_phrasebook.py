"""Phrasebook part of the demo corpus: greetings, thanks, questions, numbers, days, months.

Each entry appears in several distinct variants ("Guten Morgen", "Guten Morgen!", "Guten Morgen,
Anna!") so that it is frequent in train and still survives exact-duplicate removal.
"""

from __future__ import annotations

import random
from functools import cache

from data_prep import demo_words as W

DAY_FRAMES = [
    ("{}", "{}"),
    ("am {}", "on {}"),
    ("Heute ist {}.", "Today is {}."),
    ("Morgen ist {}.", "Tomorrow is {}."),
    ("Gestern war {}.", "Yesterday was {}."),
    ("Bis {}!", "See you on {}!"),
    ("Ich arbeite am {}.", "I work on {}."),
    ("Wir kommen am {}.", "We are coming on {}."),
    ("Ist heute {}?", "Is today {}?"),
]
MONTH_FRAMES = [
    ("{}", "{}"),
    ("im {}", "in {}"),
    ("Mein Geburtstag ist im {}.", "My birthday is in {}."),
    ("Jetzt ist {}.", "It is {} now."),
    ("Wir sehen uns im {}.", "See you in {}."),
    ("Im {} fahren wir nach Berlin.", "In {} we are going to Berlin."),
]


def names() -> list[tuple[str, str]]:
    people = [(n, n) for n in W.FIRST_NAMES.split()]
    return (
        people
        + [(f"Herr {s}", f"Mr. {s}") for s in W.SURNAMES.split()]
        + [(f"Frau {s}", f"Mrs. {s}") for s in W.SURNAMES.split()]
    )


def variants(de: str, en: str, rng: random.Random, k: int) -> list[tuple[str, str]]:
    """k distinct forms of one phrase: bare, with ! or ., addressed to a name."""
    mark = de[-1] if de[-1] in ".!?" else ""
    core_de, core_en = (de[:-1], en[:-1]) if mark else (de, en)
    out = [(de, en)] + ([] if mark else [(de + "!", en + "!"), (de + ".", en + ".")])
    for name_de, name_en in rng.sample(names(), min(k, len(names()))):
        out.append((f"{core_de}, {name_de}{mark or '!'}", f"{core_en}, {name_en}{mark or '!'}"))
    return out[:k]


def number_pairs(rng: random.Random, k: int) -> list[tuple[str, str]]:
    """Numbers bare and in frames: clock times, ages, sums."""
    nums = W.table(W.NUMBERS)
    out = []
    for value, (de, en) in enumerate(nums):
        forms = [(de, en), (de.capitalize() + ".", en.capitalize() + ".")]
        if 2 <= value <= 12:
            forms.append((f"Es ist {de} Uhr.", f"It is {en} o'clock."))
        if value >= 2:
            forms += [(f"Ich bin {de} Jahre alt.", f"I am {en} years old."),
                      (f"Ich habe {de} Euro.", f"I have {en} euros.")]  # fmt: skip
        for a in rng.sample(range(value + 1), min(k, value + 1)):
            b = value - a
            forms.append((f"{nums[a][0]} plus {nums[b][0]} ist {de}.".capitalize(),
                          f"{nums[a][1]} plus {nums[b][1]} is {en}.".capitalize()))  # fmt: skip
        out += forms[:k]
    for de, en in W.table(W.TENS):
        out += [(de, en), (f"Ich bin {de} Jahre alt.", f"I am {en} years old.")]
    return out


def phrasebook(rng: random.Random, reps: int) -> list[tuple[str, str]]:
    """All phrasebook pairs, each entry in up to `reps` variants (distinct pairs)."""
    greetings, questions = W.table(W.GREETINGS), W.table(W.QUESTIONS)
    out = []
    for de, en in greetings + questions + W.table(W.PHRASES):
        out += variants(de, en, rng, reps)
    for g_de, g_en in greetings[:10]:
        for q_de, q_en in rng.sample(questions, 4):
            out.append(
                (f"{g_de}, {q_de[0].lower()}{q_de[1:]}", f"{g_en}, {q_en[0].lower()}{q_en[1:]}")
            )
    for table, frames in ((W.DAYS, DAY_FRAMES), (W.MONTHS, MONTH_FRAMES)):
        for de, en in W.table(table):
            out += [(f_de.format(de), f_en.format(en)) for f_de, f_en in frames]
    return out + number_pairs(rng, reps)


@cache
def time_adverbs() -> list[tuple[str, str]]:
    """Sentence openers that trigger verb-second order: ('Am Montag', 'On Monday')."""
    fixed = [("heute", "today"), ("jetzt", "now"), ("morgens", "in the morning"),
             ("abends", "in the evening"), ("am Wochenende", "on the weekend"),
             ("manchmal", "sometimes")]  # fmt: skip
    days = [(f"am {de}", f"on {en}") for de, en in W.table(W.DAYS)]
    months = [(f"im {de}", f"in {en}") for de, en in W.table(W.MONTHS)]
    seasons = [(f"im {de}", f"in {en}") for de, en in W.table(W.SEASONS)]
    return fixed + days + months + seasons
