"""Judge templates: the Chain-of-Rubrics instruct template, the reasoning-model template, two ablations,
and templates read from a user's file. All wording here is rmr1's own.

A template is a system text (may be empty: reasoning models get none) and a user text with ``{pair}`` (the
laid-out pair, see ``layout``) and optionally ``{question}``. Literal braces are written ``{{`` and ``}}``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from rmr1.errors import ConfigError, InputError
from rmr1.prompts.layout import render_pair
from rmr1.textio import read_text
from rmr1.types import Message

PLACEHOLDERS = ("pair", "question")

_VERDICT_RULE = (
    "Finish with the verdict on its own line, exactly <answer>[[A]]</answer> if Chatbot A's response is better "
    "or <answer>[[B]]</answer> if Chatbot B's response is better. A tie is not allowed."
)

_FAIRNESS = (
    "Judge the substance only. The order in which the responses appear, their length and the chatbots' names "
    "must not sway you."
)

COR_SYSTEM = f"""You are an impartial judge of chatbot responses. You will see a client's question (or a \
conversation) and the responses of two chatbots, A and B. Decide which response serves the client better, \
working through these steps in order.

Step 1. Decide what kind of task this is and write it as <type>Reasoning</type> or <type>Chat</type>.
Reasoning covers mathematics, programming, factual or technical knowledge and any problem with a checkable \
answer that takes several steps. Chat covers open conversation, advice, rewriting, creative writing, \
safety-sensitive requests and everyday help.

Step 2 (Reasoning). Work the problem out yourself first, inside <solution>...</solution>. Your own answer is \
the yardstick for both responses.

Step 2 (Chat). Write the criteria a good answer to this particular request must meet, inside \
<rubric>...</rubric>. Number each criterion and give it a weight in percent; the weights add up to 100%. \
Inside the rubric, explain in <justify>...</justify> why these criteria and weights fit the request.

Step 3. Compare the two responses inside <eval>...</eval>, against your solution or your rubric. Support each \
claim with evidence: copy the exact words you rely on into <quote_A>...</quote_A> or <quote_B>...</quote_B>, \
or condense a passage into <summary_A>...</summary_A> or <summary_B>...</summary_B>.

Step 4. {_VERDICT_RULE}

{_FAIRNESS}"""

COR_NOTYPE_SYSTEM = f"""You are an impartial judge of chatbot responses. You will see a client's question (or a \
conversation) and the responses of two chatbots, A and B. Decide which response serves the client better.

Step 1. Write the criteria a good answer to this particular request must meet, inside <rubric>...</rubric>. \
Number each criterion and give it a weight in percent; the weights add up to 100%. Inside the rubric, explain \
in <justify>...</justify> why these criteria and weights fit the request.

Step 2. Compare the two responses against your rubric inside <eval>...</eval>, quoting them with \
<quote_A>...</quote_A> and <quote_B>...</quote_B> or condensing them with <summary_A>...</summary_A> and \
<summary_B>...</summary_B>.

Step 3. {_VERDICT_RULE}

{_FAIRNESS}"""

PLAIN_SYSTEM = f"""You are an impartial judge of chatbot responses. Read the client's question (or conversation) \
and the two chatbots' responses, compare them, and say which one is better.

{_VERDICT_RULE}

{_FAIRNESS}"""

_PAIR_USER = "{pair}"

REASONING_USER = f"""Compare the two chatbot responses below as an impartial judge and decide which one answers \
the client better. Check correctness first where the task has a right answer, then helpfulness, honesty and \
safety. {_FAIRNESS}

{{pair}}

After your reasoning, give the final verdict in exactly this form: <answer>[[A]]</answer> if Chatbot A is \
better, <answer>[[B]]</answer> if Chatbot B is better."""


@dataclass(frozen=True)
class JudgeTemplate:
    name: str
    system: str
    user: str
    description: str = ""
    # Written for a thinking model (one that reasons inside <think> first): generation then never stops on a
    # server-side stop string, which cannot tell a drafted verdict inside the thought from the final one.
    thinking: bool = False

    def __post_init__(self) -> None:
        check_placeholders(self.user, f"template {self.name!r}", "user")
        check_placeholders(self.system, f"template {self.name!r}", "system")
        if "{pair}" not in self.user.replace("{{", "").replace("}}", ""):
            raise ConfigError(f"template {self.name!r}: the user text must contain {{pair}}")

    def render(
        self, context: tuple[Message, ...], response_a: str, response_b: str
    ) -> tuple[tuple[Message, ...], bool]:
        """The chat to send, and whether any response text had to be neutralised."""
        rendered = render_pair(context, response_a, response_b)
        user = _fill(self.user, rendered.block, rendered.question)
        system = _fill(self.system, rendered.block, rendered.question)
        messages = (Message("system", system), Message("user", user)) if system else (Message("user", user),)
        return messages, rendered.neutralised


def _fill(text: str, pair: str, question: str) -> str:
    # Texts without braces (most system prompts) are used as they are: format() would only copy them.
    return text.format(pair=pair, question=question) if "{" in text or "}" in text else text


def check_placeholders(text: str, source: str, field: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            f"{source}, field '{field}': bad braces ({exc}); write literal braces as {{{{ }}}}"
        ) from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise ConfigError(
            f"{source}, field '{field}': unknown placeholder {{{unknown[0]}}}; "
            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )


BUILTIN: dict[str, JudgeTemplate] = {
    t.name: t
    for t in (
        JudgeTemplate("cor", COR_SYSTEM, _PAIR_USER, "Chain-of-Rubrics, for instruct judges (RM-R1 Qwen2.5)"),
        JudgeTemplate(
            "reasoning",
            "",
            REASONING_USER,
            "single user turn, for thinking judges (RM-R1 DeepSeek)",
            thinking=True,
        ),
        JudgeTemplate("cor-notype", COR_NOTYPE_SYSTEM, _PAIR_USER, "ablation: rubric always, no type step"),
        JudgeTemplate("plain", PLAIN_SYSTEM, _PAIR_USER, "ablation: compare and give the verdict, no rubric"),
    )
}


def load_template_file(path: str | Path) -> JudgeTemplate:
    """Read a YAML template file with a required ``user`` text, an optional ``system`` text and an optional
    ``thinking`` flag (true for templates written for thinking models)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("template file not found", source=str(p))
    try:
        data = yaml.safe_load(read_text(p))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError("not valid YAML", source=str(p), line=None if line is None else line + 1) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping with 'user' (and optionally 'system')", source=str(p))
    unknown = sorted(set(data) - {"name", "system", "user", "description", "thinking"})
    if unknown:
        raise InputError("unknown key", source=str(p), field=unknown[0])
    for key in ("system", "user"):
        if key in data and not isinstance(data[key], str):
            raise InputError("must be a string", source=str(p), field=key)
    if not data.get("user"):
        raise InputError("missing", source=str(p), field="user")
    if not isinstance(data.get("thinking", False), bool):
        raise InputError("must be true or false", source=str(p), field="thinking")
    try:
        return JudgeTemplate(
            str(data.get("name", p.stem)),
            data.get("system") or "",
            data["user"],
            str(data.get("description", "")),
            thinking=data.get("thinking", False),
        )
    except ConfigError as exc:
        raise InputError(str(exc).split(": ", 1)[-1], source=str(p)) from None


def get_template(name: str | None = None, file: str | Path | None = None) -> JudgeTemplate:
    """A built-in template by name (default ``cor``), or the template in ``file``."""
    if file is not None:
        return load_template_file(file)
    key = name or "cor"
    if key not in BUILTIN:
        raise ConfigError(
            f"unknown template {key!r}; choose one of {', '.join(BUILTIN)} or pass --template-file"
        )
    return BUILTIN[key]
