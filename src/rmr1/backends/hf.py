"""transformers backend for CPU and single-GPU judging.

Requests are grouped by sampling settings, sorted by prompt length (so a batch pads little), left-padded and
generated together. Prompts are rendered with the model's chat template and tokenized *without* adding special
tokens again (the template already holds the BOS; adding it twice shifts the model's output).

Stops are exact: a row ends at the model's end-of-turn token or at the first stop string outside a ``<think>``
block (``hf_stops``: a thinking judge's drafted verdict does not end it), the text is cut right after the stop
string, and ``finish_reason`` is ``"length"`` only when the token budget ran out first.

The window (``context_length``: the config's position count, or the tokenizer's limit) is applied before
generation by ``rmr1.backends.window``: a prompt that does not fit comes back ``too_long`` unsent, and a budget
that does not fit is clamped, so no row ever runs past the positions the model has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from rmr1.backends.cpu_dtype import auto_cpu_dtype
from rmr1.backends.cpu_dtype import cpu_supports_bf16 as cpu_supports_bf16  # re-exported for older imports
from rmr1.backends.window import fit_budget, too_long, window_from_config
from rmr1.errors import ModelLoadError
from rmr1.models import check_causal_lm, resolve_model
from rmr1.types import Completion, GenerationRequest, SamplingParams
from rmr1.verdicts import stop_end

_log = logging.getLogger("rmr1.backends.hf")

if TYPE_CHECKING:
    from rmr1.probability import VerdictRead


def _pick_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16
        name = auto_cpu_dtype()  # measured once per machine, then cached (backends/cpu_dtype.py)
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {name!r}; choose auto, float32, bfloat16 or float16") from None


def load_model(model: str | None, *, dtype: str = "auto", device: str | None = None) -> tuple[Any, Any, str]:
    """Load (model, tokenizer, device) for causal generation; errors become one-line ModelLoadErrors."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = resolve_model(model)
    check_causal_lm(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = _pick_dtype(dtype, device)
    try:
        # trust_remote_code stays off: checkpoint code is never run, and transformers never stops to ask
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        net = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=False)
    except ValueError as exc:
        raise ModelLoadError(f"cannot load model {path!r}: {_first_line(exc)}") from None
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load model {path!r} (no network or not a checkpoint?): {_first_line(exc)}"
        ) from None
    net.to(device).eval()  # type: ignore[arg-type]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return net, tokenizer, device


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation without system turns: their text opens the first user turn, a blank line between."""
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if len(rest) == len(messages):
        return rest
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    first_user = next((m for m in rest if m["role"] == "user"), None)
    if first_user is None:
        return [{"role": "user", "content": system}, *rest]
    first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *, fold: bool) -> tuple[str, bool]:
    """The prompt text under the model's chat template (generation prompt added), and whether the system turn
    is folded into the first user turn: ``fold`` says it already is (the template refused it before); a template
    that refuses it now gets it folded, and the caller learns so from the second value (to say it once)."""
    try:
        chat = fold_system(messages) if fold else messages
        return str(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)), fold
    except TemplateError as exc:
        # Gemma-style templates raise on a system turn; the judge's instructions still belong in the prompt.
        has_system = any(m["role"] == "system" for m in messages)
        if fold or not has_system or "system" not in str(exc).lower():
            raise
        _log.warning(
            "the chat template rejects the system role (%s): its text now opens the first user turn",
            _first_line(exc),
        )
        return render_chat(tokenizer, messages, fold=True)[0], True


@dataclass(frozen=True)
class _Prepared:
    index: int
    ids: list[int]
    think_opened: bool = False


class HFBackend:
    """Local generation with transformers. ``batch_size`` caps rows per forward batch; ``threads`` (CPU) is
    chosen by ``rmr1.threads`` when None."""

    supports_logprobs = True  # verdict probabilities by a forward pass (rmr1.probability.hf_read)
    engine = "transformers"  # with weight_format (the dtype), recorded in run.json: see evaluation.settings

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 8,
        dtype: str = "auto",
        device: str | None = None,
        context_length: int | None = None,
        threads: int | None = None,
        **_: object,
    ) -> None:
        self.model, self.tokenizer, self.device = load_model(model, dtype=dtype, device=device)
        if self.device == "cpu":
            from rmr1.threads import apply_threads

            apply_threads(threads)  # torch's default (every core) stalls on a machine others share
        self.batch_size = max(1, int(batch_size))
        self.model_name = model
        self.weight_format = str(self.model.dtype).removeprefix("torch.")
        self._fold_system = False  # set once the chat template has refused a system turn
        # The window in tokens; an explicit value (a smaller one than the model's, say) wins over the config.
        self.context_length: int | None = context_length or window_from_config(
            self.model.config, self.tokenizer
        )

    # -- prompt handling -------------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        messages = [m.to_dict() for m in request.messages]
        text, self._fold_system = render_chat(self.tokenizer, messages, fold=self._fold_system)
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        from rmr1.backends.hf_stops import prompt_opens_think

        results: list[Completion | None] = [None] * len(requests)
        groups: dict[SamplingParams, list[_Prepared]] = {}
        for i, req in enumerate(requests):
            ids = self.prompt_ids(req)
            budget = fit_budget(len(ids), req.sampling.max_new_tokens, self.context_length)
            if budget is None:
                results[i] = too_long(len(ids), self.context_length)
                continue
            row = _Prepared(i, ids, prompt_opens_think(self.tokenizer, ids))
            groups.setdefault(replace(req.sampling, max_new_tokens=budget), []).append(row)
        for sampling, prepared in groups.items():
            prepared.sort(key=lambda p: len(p.ids))
            for start in range(0, len(prepared), self.batch_size):
                chunk = prepared[start : start + self.batch_size]
                for p, completion in zip(chunk, self._generate_batch(chunk, sampling), strict=True):
                    results[p.index] = completion
        return [r for r in results if r is not None]

    def _generate_batch(self, chunk: list[_Prepared], sampling: SamplingParams) -> list[Completion]:
        import torch

        tok = self.tokenizer
        width = max(len(p.ids) for p in chunk)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in chunk], device=self.device)
        attention = torch.tensor(
            [[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in chunk], device=self.device
        )
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "pad_token_id": pad}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            from transformers import StoppingCriteriaList

            from rmr1.backends.hf_stops import StopOutsideThought

            stops = StopOutsideThought(tok, sampling.stop, width, [p.think_opened for p in chunk])
            kwargs["stopping_criteria"] = StoppingCriteriaList([stops])
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        latency = time.perf_counter() - started
        return [
            self._finish(row[width:].tolist(), len(p.ids), sampling, latency, think_opened=p.think_opened)
            for p, row in zip(chunk, out, strict=True)
        ]

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        eos = set(ids if isinstance(ids, list) else [ids]) if ids is not None else set()
        # Rows that finish early are filled with the pad token: it ends a row too.
        for extra in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id):
            if extra is not None:
                eos.add(extra)
        return eos

    def _finish(
        self,
        new: list[int],
        prompt_len: int,
        sampling: SamplingParams,
        latency: float,
        *,
        think_opened: bool = False,
    ) -> Completion:
        eos = self._eos_ids()
        ended = next((k for k, t in enumerate(new) if t in eos), None)
        kept = new[:ended] if ended is not None else new
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        finish = "stop" if ended is not None else "length"
        used = (ended + 1) if ended is not None else len(new)
        cut = stop_end(text, sampling.stop, think_opened=think_opened)
        if cut is not None:
            text, finish = text[:cut], "stop"
        if finish == "length" and len(new) < sampling.max_new_tokens:
            finish = "stop"  # generation halted on a stop string the text no longer shows after decoding
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_len,
            completion_tokens=used,
            latency_s=latency,
            think_opened=think_opened,
        )

    def read_verdicts(self, reads: Sequence[VerdictRead]) -> list[float | None]:
        """P(A) at the token after each read's prefix (rmr1.probability)."""
        from rmr1.probability import hf_read

        rows = [(self.prompt_ids(r.request), r.prefix) for r in reads]
        return hf_read(self.model, self.tokenizer, rows, device=self.device, batch_size=self.batch_size)
