"""Reading a GGUF file's metadata: gguf's own reader (the baseline) against rmr1.backends.gguf_meta.

    python bench/gguf_metadata.py [--rounds 5] [PATH.gguf ...]

Two reads, each done both ways in alternation round by round (A B A B ...): the context window (what the
openvino backend asks of every file it loads) and the vocabulary (what exporting a trained checkpoint checks
against). Default files: the embedded model's GGUF and its fp16 copy. Prints one JSON line per file and read
with the medians, the ratio (baseline over ours) and the load average before the first round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from gguf import GGUFReader

from rmr1.backends.gguf_meta import read_metadata
from rmr1.backends.openvino_weights import cached_f16
from rmr1.models import embedded_gguf
from rmr1.threads import load_average

TOKENS = "tokenizer.ggml.tokens"


def window_theirs(path: Path) -> object:
    fields = GGUFReader(str(path)).fields
    return fields[f"{fields['general.architecture'].contents()}.context_length"].contents()


def window_ours(path: Path) -> object:
    fields = read_metadata(path)
    return fields[f"{fields['general.architecture']}.context_length"]


def tokens_theirs(path: Path) -> object:
    return tuple(str(t) for t in GGUFReader(str(path)).fields[TOKENS].contents())


def tokens_ours(path: Path) -> object:
    return tuple(read_metadata(path, arrays={TOKENS})[TOKENS])


def timed(fn: Callable[[Path], object], path: Path) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(path)
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = args.paths or [embedded_gguf(), cached_f16(embedded_gguf())]
    load = load_average()
    reads = {"window": (window_theirs, window_ours), "tokens": (tokens_theirs, tokens_ours)}
    for path in paths:
        for read, (theirs, ours) in reads.items():
            base: list[float] = []
            new: list[float] = []
            for _ in range(args.rounds):
                base_s, expected = timed(theirs, path)
                new_s, got = timed(ours, path)
                if got != expected:
                    raise SystemExit(f"{path}: {read} differs between the readers")
                base.append(base_s)
                new.append(new_s)
            line = {"file": path.name, "read": read, "gguf_s": round(statistics.median(base), 3)}
            line |= {
                "ours_s": round(statistics.median(new), 4),
                "ratio": round(statistics.median(base) / statistics.median(new), 1),
                "rounds": args.rounds,
                "load_before": round(load, 2),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
