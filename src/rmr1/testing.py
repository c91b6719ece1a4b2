"""Test support: a tiny randomly initialised Llama with a tokenizer trained offline in a second, and a small
labelled preference file whose right answers a scripted judge can work out.

Unit tests of training, backends and adapters use it instead of a real checkpoint: it loads in milliseconds and
has the same interfaces (chat template with ``{% generation %}`` markers, so TRL's assistant-only loss works).
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Chatbot A Chatbot B <answer>[[A]]</answer> <answer>[[B]]</answer> <type>Chat</type> <type>Reasoning</type>",
    "<rubric> <justify> </justify> </rubric> <eval> <quote_A> </quote_A> <quote_B> </quote_B> </eval>",
    "<solution> </solution> <summary_A> </summary_A> <summary_B> </summary_B> <think> </think>",
    "The quick brown fox jumps over the lazy dog. What is 12 plus 30? It is 42. 0 1 2 3 4 5 6 7 8 9 + - * / =",
    "=== Chatbot A: response begins === response ends [Client Question] User: System: Conversation with",
    "Which response is better and why? The first answer is correct; the second one has an error in step two.",
]


def build_tiny_model(path: str | Path, *, seed: int = 0, vocab_size: int = 600) -> Path:
    """Write a tiny Llama checkpoint + tokenizer to ``path`` (idempotent) and return the path."""
    out = Path(path)
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


SUBSETS = ("chat", "math", "code")


def addition_pairs(n: int = 12, *, start: int = 0) -> list[dict[str, str]]:
    """``n`` preference rows "What is i + 1?" (chosen i + 1, rejected i + 2), subsets chat/math/code in turn."""
    return [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} + 1?",
            "chosen": f"It is {i + 1}.",
            "rejected": f"It is {i + 2}.",
            "subset": SUBSETS[i % 3],
        }
        for i in range(start, start + n)
    ]


def write_addition_pairs(path: str | Path, n: int = 12, *, start: int = 0) -> Path:
    """``addition_pairs(n, start=start)`` written as a preference file at ``path``."""
    from rmr1.jsonl import write_jsonl

    return write_jsonl(path, addition_pairs(n, start=start))
