"""Judge prompts: templates (``cor``, ``reasoning``, ``cor-notype``, ``plain`` or a file) and pair layouts."""

from rmr1.prompts.layout import neutralise, render_pair
from rmr1.prompts.pointwise import POINTWISE_TEMPLATES
from rmr1.prompts.templates import BUILTIN, JudgeTemplate, get_template, load_template_file

BUILTIN.update(POINTWISE_TEMPLATES)  # get_template finds them by name like the pairwise ones
TEMPLATES = tuple(BUILTIN)

__all__ = [
    "BUILTIN",
    "POINTWISE_TEMPLATES",
    "TEMPLATES",
    "JudgeTemplate",
    "get_template",
    "load_template_file",
    "neutralise",
    "render_pair",
]
