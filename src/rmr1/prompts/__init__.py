"""Judge prompts: templates (``cor``, ``reasoning``, ``cor-notype``, ``plain`` or a file) and pair layouts."""

from rmr1.prompts.layout import neutralise, render_pair
from rmr1.prompts.templates import BUILTIN, JudgeTemplate, get_template, load_template_file

TEMPLATES = tuple(BUILTIN)

__all__ = [
    "BUILTIN",
    "TEMPLATES",
    "JudgeTemplate",
    "get_template",
    "load_template_file",
    "neutralise",
    "render_pair",
]
