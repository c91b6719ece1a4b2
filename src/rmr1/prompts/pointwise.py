"""Pointwise judge templates: the judge sees one response, writes principles for the question, critiques the
response against them and ends with a 1-10 rating in ``<score>N</score>`` (read by ``rmr1.verdicts.parse_score``).

A pointwise template is an ordinary ``JudgeTemplate``: in pointwise mode its ``{pair}`` placeholder is filled
with the question and the one response (``render_response``) instead of two. The wording is rmr1's own.
"""

from __future__ import annotations

from rmr1.prompts.layout import QUESTION_HEADER, Neutraliser, RenderedPair, split_turns
from rmr1.prompts.templates import JudgeTemplate
from rmr1.types import Message

RESPONSE_START = "=== Chatbot response begins ==="
RESPONSE_END = "=== Chatbot response ends ==="
CONVERSATION_START = "=== Conversation with the Chatbot begins ==="
CONVERSATION_END = "=== Conversation with the Chatbot ends ==="

_SCORE_RULE = (
    "Finish with the rating on its own line, exactly <score>N</score>, where N is a whole number from 1 "
    "(useless or harmful) to 10 (as good as a response to this request can be)."
)

_STEADY = (
    "Rate the substance only: length, confident tone and formatting earn nothing by themselves. Keep the scale "
    "steady, so that two responses of equal quality get the same number."
)

POINTWISE_SYSTEM = f"""You are an impartial judge of a chatbot's response. You will see a client's question \
(or a conversation) and one response. Rate how well the response serves the client, in these steps.

Step 1. Write the principles a good answer to this particular request must follow, inside \
<principles>...</principles>: a short numbered list, most important first. Where the request has a checkable \
answer (mathematics, code, facts), work the answer out yourself inside the principles and make being right \
the first principle.

Step 2. Critique the response against each principle inside <critique>...</critique>. Back each point with \
the response's own words in <quote>...</quote>. Say plainly what is wrong, missing or unsafe.

Step 3. {_SCORE_RULE}

{_STEADY}"""

POINTWISE_REASONING_USER = f"""Rate the chatbot response below as an impartial judge. First write the \
principles a good answer to this request must follow, then critique the response against them, checking \
correctness first where the task has a right answer, then helpfulness, honesty and safety. {_STEADY}

{{pair}}

After your reasoning, give the rating in exactly this form: <score>N</score>, N a whole number from 1 \
(useless or harmful) to 10 (excellent)."""

POINTWISE_TEMPLATES: dict[str, JudgeTemplate] = {
    t.name: t
    for t in (
        JudgeTemplate("pointwise", POINTWISE_SYSTEM, "{pair}", "pointwise: principles, critique, 1-10 score"),
        JudgeTemplate(
            "pointwise-reasoning",
            "",
            POINTWISE_REASONING_USER,
            "pointwise, one user turn, for thinking judges",
            thinking=True,
        ),
    )
}


def _speaker(message: Message) -> str:
    return {"user": "User", "assistant": "Chatbot", "system": "System"}[message.role]


def render_response(context: tuple[Message, ...], response: str) -> RenderedPair:
    """The one-response block: single-turn layout for one user turn, else the whole conversation."""
    turns, asked = split_turns(context)
    clean = Neutraliser()
    if len(turns) <= 1:
        question = clean(asked)
        block = "\n".join([QUESTION_HEADER, question, "", RESPONSE_START, clean(response), RESPONSE_END])
        return RenderedPair(question, block, clean.changed)
    lines = [CONVERSATION_START]
    lines.extend(f"{_speaker(m)}: {clean(m.content)}" for m in context)
    lines.append(f"Chatbot: {clean(response)}")
    lines.append(CONVERSATION_END)
    return RenderedPair(turns[-1].content, "\n".join(lines), clean.changed)


def _fill(text: str, rendered: RenderedPair) -> str:
    # Texts without braces are used as they are, like pairwise templates do.
    return (
        text.format(pair=rendered.block, question=rendered.question) if "{" in text or "}" in text else text
    )


def render_rating(
    template: JudgeTemplate, context: tuple[Message, ...], response: str
) -> tuple[tuple[Message, ...], bool]:
    """The chat that asks ``template`` to rate ``response``, and whether any text had to be neutralised."""
    rendered = render_response(context, response)
    user, system = (_fill(text, rendered) for text in (template.user, template.system))
    messages = (Message("system", system), Message("user", user)) if system else (Message("user", user),)
    return messages, rendered.neutralised


__all__ = ["POINTWISE_TEMPLATES", "render_rating", "render_response"]
