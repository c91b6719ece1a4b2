"""A chat template with ``{% generation %}`` markers, so TRL can put the loss on the assistant trace only.

Many models ship a template without the markers (SmolLM2, Qwen2.5). For ChatML templates rmr1 writes an
equivalent one with markers: it keeps the model's default system prompt (the text the template inserts when a
chat has no system turn) and checks that the new template renders sample chats exactly as the original does.
When that check fails, TRL's own patched templates are tried; failing both, the user must supply a template.
"""

from __future__ import annotations

from typing import Any

from rmr1.errors import ConfigError

_START, _END = "<|im_start|>", "<|im_end|>"

_CHATML = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' and default_system %}"
    "{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_SAMPLES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "R1"}],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "R1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "R2"},
    ],
]


def has_generation_markers(template: str | None) -> bool:
    return template is not None and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def _render(tokenizer: Any, messages: list[dict[str, str]], template: str | None, prompt: bool) -> str:
    text: str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=prompt, chat_template=template
    )
    return text


def _default_system(tokenizer: Any) -> str | None:
    """The system text the original template adds to a chat without one (None: not a ChatML template)."""
    rendered = _render(tokenizer, [{"role": "user", "content": "Q1"}], None, False)
    user_block = f"{_START}user\nQ1{_END}"
    head = rendered.split(user_block)[0]
    if user_block not in rendered:
        return None
    if not head:
        return ""
    prefix = f"{_START}system\n"
    if head.startswith(prefix) and head.endswith(f"{_END}\n"):
        return head[len(prefix) : -len(_END) - 1]
    return None


def chatml_with_markers(tokenizer: Any) -> str | None:
    """An equivalent ChatML template with markers, or None when the original is not plain ChatML."""
    if _START not in (tokenizer.chat_template or ""):
        return None
    system = _default_system(tokenizer)
    if system is None:
        return None
    literal = system.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    candidate = "{%- set default_system = '" + literal + "' %}" + _CHATML
    for sample in _SAMPLES:
        for prompt in (False, True):
            chat = sample[:-1] if prompt else sample
            if _render(tokenizer, chat, None, prompt) != _render(tokenizer, chat, candidate, prompt):
                return None
    return candidate


def training_chat_template(tokenizer: Any, template_file: str | None = None) -> str:
    """The template to train with: the user's file, the model's own (if marked), or an equivalent one."""
    if template_file:
        from pathlib import Path

        from rmr1.textio import read_text

        path = Path(template_file)
        if not path.is_file():
            raise ConfigError(f"chat_template_file {template_file!r} not found")
        text = read_text(path)
        if not has_generation_markers(text):
            raise ConfigError(f"{template_file}: the template has no {{% generation %}} markers")
        return text
    current = tokenizer.chat_template
    if not current:
        raise ConfigError(
            "the model has no chat template; pass chat_template_file=FILE (with {% generation %} marks)"
        )
    if has_generation_markers(current):
        return str(current)
    marked = chatml_with_markers(tokenizer)
    if marked is not None:
        return marked
    try:
        from trl.chat_template_utils import get_training_chat_template

        patched = get_training_chat_template(tokenizer)
    except Exception:
        patched = None
    if patched and has_generation_markers(patched):
        return str(patched)
    raise ConfigError(
        "the model's chat template has no {% generation %} markers and rmr1 cannot derive one; "
        "pass chat_template_file=FILE or set assistant_only_loss=false"
    )


__all__ = ["chatml_with_markers", "has_generation_markers", "training_chat_template"]
