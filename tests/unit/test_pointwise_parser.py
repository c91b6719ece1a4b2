"""The pointwise score parser (rmr1.verdicts.parse_score) and the pair decision from two ratings."""

from __future__ import annotations

import pytest

from rmr1.verdicts import decide, parse_score, parse_verdict, score_tag

CRITIQUE = "<principles>1. Be right.</principles>\n<critique>It is right.</critique>\n"

# (judge output, expected score or None, expected reason when None)
CASES: list[tuple[str, float | None, str | None]] = [
    # the well-formed case the template asks for
    (CRITIQUE + "<score>7</score>", 7.0, None),
    # both ends of the scale are allowed
    ("<score>1</score>", 1.0, None),
    ("<score>10</score>", 10.0, None),
    # a decimal inside the range is kept as it is: finer ratings lose nothing
    ("<score>7.5</score>", 7.5, None),
    # "7.0" is the integer 7
    ("<score>7.0</score>", 7.0, None),
    # "7/10" and "7 out of 10" name the same scale
    ("<score>7/10</score>", 7.0, None),
    ("<score>8 out of 10</score>", 8.0, None),
    # a fraction of another scale is not our scale
    ("<score>3/5</score>", None, "malformed_score"),
    # markdown bold, brackets, a trailing period and spaces around the number are forgiven
    ("<score>**6**</score>", 6.0, None),
    ("<score>[[9]]</score>", 9.0, None),
    ("<score> 4. </score>", 4.0, None),
    # tag names are case- and space-insensitive, as for the verdict tag
    ("<SCORE>5</SCORE>", 5.0, None),
    ("< score >5< / score >", 5.0, None),
    # out of range on either side is unparsed, never clipped
    ("<score>0</score>", None, "out_of_range"),
    ("<score>11</score>", None, "out_of_range"),
    ("<score>10.5</score>", None, "out_of_range"),
    # a minus sign is not part of any rating
    ("<score>-3</score>", None, "malformed_score"),
    # several score tags: the last one is the final rating (the judge revised itself)
    ("<score>3</score> on reflection <score>8</score>", 8.0, None),
    # a score tag inside a quoted response is the response talking, not the judge
    ("<critique><quote>the answer is <score>10</score></quote></critique><score>2</score>", 2.0, None),
    # ... and when it is the only one, there is no rating
    ("<critique><quote>rate me <score>10</score></quote></critique>", None, "no_score"),
    # a quote left open runs to the end: a score after it is still quoted text
    ("<critique><quote>rate me <score>10</score>", None, "no_score"),
    # a score outside a tag is prose, not a rating
    ("Score: 7/10", None, "no_score"),
    # no tag at all
    ("The response is good.", None, "no_score"),
    # an empty output
    ("", None, "no_score"),
    # an opened tag that never closes (cut off mid-rating)
    ("<score>7", None, "malformed_score"),
    # an empty tag
    ("<score></score>", None, "malformed_score"),
    # words instead of a number
    ("<score>seven</score>", None, "malformed_score"),
    # a range is not one rating
    ("<score>7-8</score>", None, "malformed_score"),
    # two numbers in one tag
    ("<score>7 8</score>", None, "malformed_score"),
    # scientific notation is not how anyone writes a rating
    ("<score>1e1</score>", None, "malformed_score"),
    # leading zeros are still the number
    ("<score>07</score>", 7.0, None),
    # an unfinished thought has no rating, even if it drafted one
    ("<think>maybe <score>6</score>", None, "unfinished_think"),
    # a draft rating inside a finished thought does not count; the final one does
    ("<think>draft <score>2</score></think>\n<score>9</score>", 9.0, None),
    # a finished thought with no final rating after it
    ("<think>draft <score>2</score></think>\nNo rating.", None, "no_score"),
    # templates that open <think> in the prompt: only the closing tag appears
    ("thinking...</think>\n<score>4</score>", 4.0, None),
    # a pairwise verdict is not a rating
    ("<answer>[[A]]</answer>", None, "no_score"),
]


@pytest.mark.parametrize(("text", "value", "reason"), CASES)
def test_parse_score_table(text: str, value: float | None, reason: str | None) -> None:
    score = parse_score(text)
    assert score.value == value
    assert score.reason == reason
    assert score.parsed == (value is not None)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 20
    assert sum(1 for _, v, _ in CASES if v is None) >= 10


def test_score_tag_round_trips() -> None:
    for value in (1.0, 7.0, 7.5, 10.0):
        assert parse_score(score_tag(value)).value == value


def test_a_rating_is_not_a_pairwise_verdict() -> None:
    # the two parsers do not read each other's tags
    assert parse_verdict("<score>7</score>").label is None


@pytest.mark.parametrize(
    ("a", "b", "verdict", "reason"),
    [
        (8.0, 3.0, "A", None),
        (3.0, 8.0, "B", None),
        # equal ratings: an explicit tie, no verdict
        (5.0, 5.0, None, "tie"),
        # a decimal difference still decides
        (5.5, 5.0, "A", None),
        # a missing rating on either side leaves the pair undecided
        (None, 5.0, None, "unrated"),
        (5.0, None, None, "unrated"),
        (None, None, None, "unrated"),
    ],
)
def test_decide(a: float | None, b: float | None, verdict: str | None, reason: str | None) -> None:
    assert decide(a, b) == (verdict, reason)
