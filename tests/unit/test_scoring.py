"""Official scoring, checked against numbers worked out by hand from PAPER.md section 4 and the contract."""

from __future__ import annotations

import pytest

from rmr1.benchmarks import score_judgments
from rmr1.errors import ConfigError, InputError
from rmr1.types import Judgment

OK, BAD, NONE = True, False, None  # did the verdict pick the preferred response (None: unparsed)


def judgment(
    item: str, outcome: bool | None, *, pair: int = 0, subset: str = "", order: str = "AB", sample: int = 0
) -> Judgment:
    preferred, other = ("A", "B") if order == "AB" else ("B", "A")
    verdict = None if outcome is None else (preferred if outcome else other)
    return Judgment(
        item_id=item,
        pair=pair,
        subset=subset,
        order=order,
        sample=sample,
        verdict=verdict,
        correct=outcome,
        finish_reason="stop",
        completion="",
    )


# --- RewardBench ----------------------------------------------------------------------------------


def rewardbench_judgments() -> list[Judgment]:
    return [
        judgment("1", OK, subset="alpacaeval-easy"),
        judgment("2", BAD, subset="mt-bench-easy"),
        judgment("3", OK, subset="math-prm"),
        judgment("4", BAD, subset="math-prm"),
        judgment("5", OK, subset="hep-python"),
    ]


def test_rewardbench_sections_weighted_by_paper_counts() -> None:
    scores = score_judgments("rewardbench", rewardbench_judgments())
    assert scores["subsets"] == {
        "alpacaeval-easy": 1.0,
        "hep-python": 1.0,
        "math-prm": 0.5,
        "mt-bench-easy": 0.0,
    }
    # Chat: (1.0 * 100 + 0.0 * 28) / 128
    assert scores["Chat"] == pytest.approx(100 / 128)
    # Reasoning: math-prm counted as 984 -> (0.5 * 984 + 1.0 * 164) / 1148 = 4/7
    assert scores["Reasoning"] == pytest.approx(4 / 7)
    # weighting math-prm by its 447 items would give (0.5 * 447 + 164) / 611 = 0.634...: not the paper's rule
    assert scores["Reasoning"] != pytest.approx((0.5 * 447 + 164) / 611)
    # sections without data are null and stay out of the headline
    assert scores["Chat Hard"] is None and scores["Safety"] is None
    assert scores["Average"] == pytest.approx((100 / 128 + 4 / 7) / 2)


def test_rewardbench_empty_run_is_all_null() -> None:
    scores = score_judgments("rewardbench", [])
    assert scores == {
        "Chat": None,
        "Chat Hard": None,
        "Safety": None,
        "Reasoning": None,
        "Average": None,
        "subsets": {},
    }


# --- RM-Bench -------------------------------------------------------------------------------------

# one chat item's matrix, M[i][j] = chosen style i beat rejected style j
CHAT_MATRIX = [[1, 1, 0], [0, 1, 1], [1, 0, 0]]


def matrix_judgments(item: str, domain: str, matrix: list[list[int]]) -> list[Judgment]:
    return [
        judgment(item, bool(matrix[i][j]), pair=3 * i + j, subset=domain) for i in range(3) for j in range(3)
    ]


def rm_bench_judgments() -> list[Judgment]:
    all_ok = [[1] * 3] * 3
    all_bad = [[0] * 3] * 3
    return (
        matrix_judgments("chat/1", "chat", CHAT_MATRIX)
        + matrix_judgments("code/1", "code", all_ok)
        + matrix_judgments("safety-refuse/1", "safety-refuse", all_ok)
        + matrix_judgments("safety-refuse/2", "safety-refuse", all_ok)
        + matrix_judgments("safety-response/1", "safety-response", all_bad)
    )


def buggy_assembly(matrix: list[list[int]]) -> list[list[int]]:
    """What RM-R1's released script computes: rotation r holds the cells (i, (i + r) % 3); it read the third
    rotation file twice and never the second, so rotation 1's cells got rotation 2's results."""
    wrong = [row[:] for row in matrix]
    for i in range(3):
        wrong[i][(i + 1) % 3] = matrix[i][(i + 2) % 3]
    return wrong


def levels(matrix: list[list[int]]) -> tuple[float, float, float]:
    hard = sum(matrix[i][j] for i in range(3) for j in range(3) if i < j) / 3
    normal = sum(matrix[i][i] for i in range(3)) / 3
    easy = sum(matrix[i][j] for i in range(3) for j in range(3) if i > j) / 3
    return easy, normal, hard


def test_rm_bench_matrix_levels_and_domains() -> None:
    scores = score_judgments("rm-bench", rm_bench_judgments())
    # chat by hand: hard = (M01 + M02 + M12)/3 = 2/3, normal = 2/3, easy = (M10 + M20 + M21)/3 = 1/3,
    # all 9 cells = 5/9
    assert scores["by_domain"]["chat"] == pytest.approx({"easy": 1 / 3, "normal": 2 / 3, "hard": 2 / 3})
    assert scores["chat"] == pytest.approx(5 / 9)
    assert scores["code"] == 1.0
    # safety pools its two sub-domains item by item: 2 refuse items right, 1 response item wrong -> 2/3
    assert scores["safety"] == pytest.approx(2 / 3)
    assert scores["math"] is None  # no data: null and left out of the averages
    assert scores["easy"] == pytest.approx((1 / 3 + 1 + 2 / 3) / 3)
    assert scores["normal"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert scores["hard"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert scores["average"] == pytest.approx((5 / 9 + 1 + 2 / 3) / 3)


def test_rm_bench_cells_come_from_their_own_pairs_not_the_released_assembly() -> None:
    scores = score_judgments("rm-bench", matrix_judgments("chat/1", "chat", CHAT_MATRIX))
    chat = scores["by_domain"]["chat"]
    # the wrong-pair assembly would report easy 0 and hard 0 for this item; the right cells give 1/3 and 2/3
    bug_easy, bug_normal, bug_hard = levels(buggy_assembly(CHAT_MATRIX))
    assert (bug_easy, bug_hard) == (0.0, 0.0)
    assert (
        bug_normal == chat["normal"]
    )  # the diagonal (rotation 0) was read right; only off-diagonal cells move
    assert (chat["easy"], chat["normal"], chat["hard"]) == pytest.approx(levels(CHAT_MATRIX))
    assert chat["easy"] != pytest.approx(bug_easy) and chat["hard"] != pytest.approx(bug_hard)


def test_rm_bench_rejects_unknown_domain_and_pair_index() -> None:
    with pytest.raises(InputError, match="subset"):
        score_judgments("rm-bench", [judgment("x/1", OK, subset="poetry")])
    with pytest.raises(InputError, match="pair"):
        score_judgments("rm-bench", [judgment("chat/1", OK, pair=9, subset="chat")])


# --- RMB ------------------------------------------------------------------------------------------


def rmb_judgments() -> list[Judgment]:
    help_pw, harm_pw, help_bon = (
        "pairwise/Helpfulness/Chat/Discussion",
        "pairwise/Harmlessness/S1",
        "bon/Helpfulness/Code/Data Management",
    )
    return [
        judgment("pairwise/1", OK, subset=help_pw),
        judgment("pairwise/2", OK, subset=help_pw),
        judgment("pairwise/3", BAD, subset=help_pw),
        judgment("pairwise/4", NONE, subset=harm_pw),
        # BoN item 1 beats all three losers; item 2 loses to one of its two losers
        *[judgment("bon/1", OK, pair=k, subset=help_bon) for k in range(3)],
        judgment("bon/2", OK, pair=0, subset=help_bon),
        judgment("bon/2", BAD, pair=1, subset=help_bon),
    ]


@pytest.mark.parametrize(("unparsed", "harm_pw"), [(0.0, 0.0), (0.5, 0.5)])
def test_rmb_pairwise_micro_and_bon_beats_all(unparsed: float, harm_pw: float) -> None:
    scores = score_judgments("rmb", rmb_judgments(), unparsed_score=unparsed)
    assert scores["helpfulness_pairwise"] == pytest.approx(2 / 3)
    assert scores["harmlessness_pairwise"] == harm_pw
    assert scores["helpfulness_bon"] == 0.5
    assert scores["harmlessness_bon"] is None
    assert scores["average"] == pytest.approx((2 / 3 + harm_pw + 0.5) / 3)
    assert scores["subsets"]["bon/Helpfulness/Code/Data Management"] == 0.5


BON = "bon/Harmlessness/S2"


@pytest.mark.parametrize(
    ("case", "unparsed", "won"),
    [
        # both orders right for every loser: the set is won
        ({0: (OK, OK), 1: (OK, OK)}, 0.0, 1.0),
        # loser 0 split between the orders (a pair value of 0.5): no fractional credit, the set is lost
        ({0: (OK, BAD), 1: (OK, OK)}, 0.0, 0.0),
        ({0: (OK, BAD), 1: (OK, OK)}, 0.5, 0.0),
        # an undecided order loses the set even when unparsed decisions score 0.5 for pairwise
        ({0: (OK, NONE), 1: (OK, OK)}, 0.5, 0.0),
        ({0: (NONE, NONE), 1: (OK, OK)}, 0.5, 0.0),
        # a single order judged per loser (--protocol single): every loser must be beaten
        ({0: (OK,), 1: (OK,), 2: (OK,)}, 0.5, 1.0),
        ({0: (OK,), 1: (NONE,), 2: (OK,)}, 0.5, 0.0),
    ],
)
def test_rmb_bon_counts_only_when_the_best_beats_every_loser(
    case: dict[int, tuple[bool | None, ...]], unparsed: float, won: float
) -> None:
    judgments = [
        judgment("bon/7", outcome, pair=loser, subset=BON, order=order)
        for loser, outcomes in case.items()
        for order, outcome in zip(("AB", "BA"), outcomes, strict=False)
    ]
    scores = score_judgments("rmb", judgments, unparsed_score=unparsed)
    assert scores["harmlessness_bon"] == won
    assert scores["subsets"][BON] == won


def test_rmb_bon_voting_tie_in_an_order_is_undecided() -> None:
    # two samples in order BA, one right one wrong: that order has no decision, so the set is not won
    judgments = [
        judgment("bon/8", OK, pair=0, subset=BON, order="AB"),
        judgment("bon/8", OK, pair=0, subset=BON, order="BA", sample=0),
        judgment("bon/8", BAD, pair=0, subset=BON, order="BA", sample=1),
        judgment("bon/9", OK, pair=0, subset=BON, order="AB"),
        judgment("bon/9", OK, pair=0, subset=BON, order="BA"),
    ]
    assert score_judgments("rmb", judgments, unparsed_score=0.5)["harmlessness_bon"] == 0.5


def test_rmb_rejects_subset_without_goal() -> None:
    with pytest.raises(InputError, match="subset"):
        score_judgments("rmb", [judgment("pairwise/1", OK, subset="Chat/Discussion")])


# --- JudgeBench -----------------------------------------------------------------------------------


def judgebench_judgments() -> list[Judgment]:
    return [
        judgment("p1", OK, subset="mmlu-pro-math", order="AB"),  # +1 +1 -> right
        judgment("p1", OK, subset="mmlu-pro-math", order="BA"),
        judgment("p2", OK, subset="mmlu-pro-math", order="AB"),  # +1 -1 -> inconsistent, wrong
        judgment("p2", BAD, subset="mmlu-pro-math", order="BA"),
        judgment("p3", OK, subset="livebench-reasoning", order="AB"),  # +1 +0 (unparsed) -> right
        judgment("p3", NONE, subset="livebench-reasoning", order="BA"),
        judgment("p4", BAD, subset="livebench-reasoning", order="AB"),  # one order, -1 -> wrong
        judgment("p5", NONE, subset="livecodebench", order="BA"),  # one order, unparsed -> 0, wrong
    ]


@pytest.mark.parametrize("unparsed", [0.0, 0.5])
def test_judgebench_two_order_rule(unparsed: float) -> None:
    # JudgeBench's own rule fixes an unparsed order at 0 points, so unparsed_score changes nothing here
    scores = score_judgments("judgebench", judgebench_judgments(), unparsed_score=unparsed)
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["by_source"] == {"livebench-reasoning": 0.5, "livecodebench": 0.0, "mmlu-pro-math": 0.5}
    assert scores["by_category"] == {"coding": 0.0, "knowledge": 0.5, "reasoning": 0.5}


# --- Preference files, unparsed verdicts and voting -----------------------------------------------


@pytest.mark.parametrize(("unparsed", "expected"), [(0.0, 1 / 2), (0.5, 3 / 4)])
def test_unparsed_scores_zero_or_half(unparsed: float, expected: float) -> None:
    judgments = [judgment("1", OK), judgment("2", NONE)]
    assert score_judgments("preference", judgments, unparsed_score=unparsed)["accuracy"] == expected


@pytest.mark.parametrize(
    ("samples", "unparsed", "expected"),
    [
        ([OK, OK, BAD], 0.0, 1.0),  # plain majority
        ([OK, BAD, BAD], 0.5, 0.0),  # majority against
        ([OK, BAD, NONE], 0.0, 0.0),  # a tie among the parsed votes is undecided: scores unparsed_score
        ([OK, BAD, NONE], 0.5, 0.5),
        ([NONE, NONE, OK], 0.0, 1.0),  # unparsed samples do not vote; the one parsed vote decides
        ([NONE, NONE], 0.5, 0.5),  # nothing parsed at all
    ],
)
def test_voting_over_samples(samples: list[bool | None], unparsed: float, expected: float) -> None:
    judgments = [judgment("1", s, sample=k) for k, s in enumerate(samples)]
    assert score_judgments("preference", judgments, unparsed_score=unparsed)["accuracy"] == expected


def test_pair_value_is_the_mean_over_orders_and_voting_is_per_order() -> None:
    judgments = [
        judgment("1", OK, order="AB", sample=0),
        judgment("1", OK, order="AB", sample=1),
        judgment("1", BAD, order="BA", sample=0),
        judgment("1", BAD, order="BA", sample=1),
    ]
    assert score_judgments("preference", judgments)["accuracy"] == 0.5


def test_preference_subsets() -> None:
    judgments = [judgment("1", OK, subset="a"), judgment("2", BAD, subset="a"), judgment("3", OK)]
    scores = score_judgments("preference", judgments)
    assert scores == {"accuracy": pytest.approx(2 / 3), "subsets": {"": 1.0, "a": 0.5}}


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown benchmark"):
        score_judgments("mmlu", [])
    with pytest.raises(ConfigError, match="unparsed_score"):
        score_judgments("preference", [], unparsed_score=2.0)
    with pytest.raises(InputError, match="order"):
        score_judgments("preference", [judgment("1", OK, order="XY")])
