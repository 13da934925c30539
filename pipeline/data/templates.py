"""Transcription sentences of the tiny eSpeak corpus: ten template families whose slots only take values that
make sense together (thousands of fills each), and :func:`transcription_sentences`, a seeded draw of
distinct ones."""

from __future__ import annotations

import random
from collections.abc import Callable


from pipeline.data.qa import number_to_words


_NAMES = ("Maria", "Tom", "Anna", "David", "Sarah", "James", "Emma", "Peter", "Lucy", "Daniel",
          "Grace", "Oliver", "Nina", "Samuel", "Laura", "Henry", "Sophie", "Michael")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CITIES = ("London", "Paris", "Boston", "Chicago", "Madrid", "Dublin", "Denver", "Toronto",
           "Sydney", "Berlin", "Seattle", "Glasgow")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _animal_sentence(rng: random.Random) -> str:
    adjective = rng.choice(("small", "big", "old", "young", "tired", "happy", "quiet", "hungry",
                            "lazy", "brown", "gray", "curious"))
    animal = rng.choice(("dog", "cat", "horse", "rabbit", "fox", "goat", "duck", "sheep", "deer",
                         "pony"))
    verb = rng.choice(("ran", "walked", "jumped", "wandered", "hurried", "trotted"))
    path = rng.choice(("across the garden", "through the forest", "along the river",
                       "into the barn", "over the fence", "around the lake", "down the hill",
                       "past the old church", "towards the farmhouse", "across the field"))
    return f"The {adjective} {animal} {verb} {path}."


def _found_object_sentence(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    verb = rng.choice(("bought", "found", "lost", "borrowed", "forgot", "painted", "sold"))
    adjective = rng.choice(("red", "old", "heavy", "orange", "tiny", "wooden", "expensive",
                            "yellow", "green", "antique"))
    thing = rng.choice(("umbrella", "bicycle", "lamp", "suitcase", "guitar", "clock", "chair",
                        "mirror", "kettle", "notebook"))
    when = rng.choice(("yesterday morning", "last week", "on Saturday", "this afternoon",
                       "a few days ago", "at the market", "in the old town", "last summer"))
    return f"{name} {verb} {_article(adjective)} {adjective} {thing} {when}."


def _request_sentence(rng: random.Random) -> str:
    request = rng.choice(("close the window", "turn off the lights", "pass me the salt",
                          "call me back", "open the front door", "bring the blue folder",
                          "read the last page again", "wait for me at the station",
                          "water the plants", "check the train times", "lock the back door",
                          "send me the address"))
    ending = rng.choice(("", " before lunch", " when you have a moment", " this evening",
                         " after the meeting", " tomorrow morning"))
    opener = rng.choice(("Could you please", "Would you", "Can you"))
    return f"{opener} {request}{ending}?"


def _habit_sentence(rng: random.Random) -> str:
    relative = rng.choice(("brother", "sister", "mother", "father", "uncle", "aunt", "cousin",
                           "neighbor", "grandmother", "best friend"))
    habit = rng.choice(("plays tennis", "bakes fresh bread", "visits the library",
                        "goes swimming", "cooks dinner for everyone", "walks to work",
                        "reads the newspaper", "calls home", "goes to the gym",
                        "works from home", "cleans the whole house"))
    day = rng.choice(_WEEKDAYS)
    return f"My {relative} {habit} every {day}."


def _weather_sentence(rng: random.Random) -> str:
    weather = rng.choice(("sunny", "cold", "windy", "rainy", "cloudy", "warm", "foggy", "snowy",
                          "very hot", "quite mild"))
    city = rng.choice(_CITIES)
    when = rng.choice(("tomorrow", "this weekend", "on Monday", "tonight", "next week",
                       "all day", "in the afternoon"))
    lead = rng.choice(("It will be", "The forecast says it will be", "They say it will be"))
    return f"{lead} {weather} in {city} {when}."


def _plan_sentence(rng: random.Random) -> str:
    subject = rng.choice(("We", "I", "They", "You"))
    need = rng.choice(("need to", "have to", "should", "want to", "forgot to"))
    task = rng.choice(("finish the report", "clean the kitchen", "pack our bags", "buy some milk",
                       "fix the bicycle", "paint the fence", "book the tickets",
                       "answer the emails", "feed the cat", "return the library books"))
    deadline = rng.choice(("the meeting starts", "the guests arrive", "the shop closes",
                           "it gets dark", "the train leaves", "the end of the month",
                           "the weekend"))
    if subject != "We":
        task = task.replace(" our ", " the ")
    return f"{subject} {need} {task} before {deadline}."


_COUNTABLE_PLACES = {
    "books": ("on the shelf", "in the box", "on the desk"),
    "apples": ("in the basket", "on the table", "in the bowl"),
    "chairs": ("in the kitchen", "around the table", "in the hall"),
    "cups": ("in the sink", "on the tray", "in the cupboard"),
    "birds": ("on the roof", "in the tree", "on the wire"),
    "boats": ("in the harbor", "on the lake", "near the pier"),
    "pencils": ("in the drawer", "on the desk", "in the jar"),
    "children": ("in the park", "on the bus", "in the classroom"),
}


def _count_sentence(rng: random.Random) -> str:
    things = rng.choice(sorted(_COUNTABLE_PLACES))
    place = rng.choice(_COUNTABLE_PLACES[things])
    count = number_to_words(rng.randint(2, 19))
    return f"There are {count} {things} {place}."


def _timetable_sentence(rng: random.Random) -> str:
    vehicle = rng.choice(("train", "bus", "ferry", "plane", "coach"))
    city = rng.choice(_CITIES)
    hour = number_to_words(rng.randint(1, 12))
    clock = rng.choice((f"{hour} o'clock", f"half past {hour}", f"a quarter to {hour}",
                        f"a quarter past {hour}"))
    verb = rng.choice(("leaves at", "arrives at", "is delayed until"))
    return f"The {vehicle} to {city} {verb} {clock}."


# thing -> (praise, complaints); "complained" only goes with a complaint
_OPINIONS = {
    "soup": (("delicious", "just right"), ("too salty", "still cold")),
    "movie": (("wonderful", "really funny"), ("boring", "far too long")),
    "concert": (("amazing", "worth every penny"), ("too loud", "badly organized")),
    "hotel": (("very clean", "close to the beach"), ("too expensive", "quite noisy")),
    "book": (("hard to put down", "beautifully written"), ("rather slow", "too short")),
    "coffee": (("perfect", "surprisingly good"), ("too strong", "lukewarm")),
    "lecture": (("interesting", "very useful"), ("hard to follow", "over too quickly")),
}


def _opinion_sentence(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    thing = rng.choice(sorted(_OPINIONS))
    praise, complaints = _OPINIONS[thing]
    if rng.random() < 0.5:
        opinion, verb = rng.choice(praise), rng.choice(("said", "thought", "told me"))
    else:
        opinion, verb = rng.choice(complaints), rng.choice(("said", "thought", "complained"))
    return f"{name} {verb} that the {thing} was {opinion}."


def _question_sentence(rng: random.Random) -> str:
    form = rng.randrange(3)
    if form == 0:
        thing = rng.choice(("keys", "tickets", "umbrella", "letters", "camera", "map", "glasses"))
        verb = rng.choice(("put", "leave", "find", "hide"))
        return f"Where did you {verb} the {thing}?"
    if form == 1:
        place = rng.choice(("museum", "bakery", "post office", "swimming pool", "library",
                            "pharmacy", "bank"))
        day = rng.choice(("on Sunday", "tomorrow", "in the morning", "after the holidays",
                          "on weekdays"))
        return f"When does the {place} open {day}?"
    name = rng.choice(_NAMES)
    activity = rng.choice(("moving to", "flying to", "studying in", "working in"))
    return f"Is {name} really {activity} {rng.choice(_CITIES)} next year?"


SENTENCE_TEMPLATES: dict[str, Callable[[random.Random], str]] = {
    "animal": _animal_sentence,
    "object": _found_object_sentence,
    "request": _request_sentence,
    "habit": _habit_sentence,
    "weather": _weather_sentence,
    "plan": _plan_sentence,
    "count": _count_sentence,
    "timetable": _timetable_sentence,
    "opinion": _opinion_sentence,
    "question": _question_sentence,
}
"""Sentence families, each a function of a seeded RNG; every family has thousands of fills."""


def transcription_sentences(seed: int, count: int = 400) -> list[tuple[str, str]]:
    """``count`` distinct (template family, sentence) pairs, the same for the same seed.

    Families are visited round-robin so each contributes about ``count / 10`` sentences.

    >>> transcription_sentences(seed=0, count=2)  # doctest: +NORMALIZE_WHITESPACE
    [('animal', 'The lazy goat trotted across the field.'),
     ('object', 'Emma found a yellow chair a few days ago.')]
    """
    rng = random.Random(f"aura-corpus-sentences:{seed}")
    families = list(SENTENCE_TEMPLATES)
    seen: set[str] = set()
    sentences: list[tuple[str, str]] = []
    attempts = 0
    while len(sentences) < count:
        family = families[len(sentences) % len(families)]
        sentence = SENTENCE_TEMPLATES[family](rng)
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"could not build {count} distinct sentences; ask for fewer")
        if sentence not in seen:
            seen.add(sentence)
            sentences.append((family, sentence))
    return sentences
