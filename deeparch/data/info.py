"""What a model builder needs to know about a dataset: its kind, input shape and classes."""

from __future__ import annotations

from dataclasses import dataclass, field

# The kinds of input a dataset can hold, and so the kinds an architecture can accept.
#   image:    float (N, C, H, W) in [0, 1]
#   points:   float (N, 2)  (2-D toy sets)
#   sequence: float (N, T, F)  (batch_first, time steps then features per step)
#   tokens:   long  (N, T)  integer token ids below `vocab_size`
# and the kinds whose labels are sequences too (target_shape), not one class per sample:
#   series:   float (N, T, 1) windows and y (N, T, 1) the next values (forecasting)
#   text:     long  (N, T) character ids and y (N, T) the next characters (a language model)
#   transduction: long (N, T) input ids and y (N, T_out) output ids (sequence to sequence)
#   windows:  long  (N, 2w + 1) word ids around a centre word, y (N,) the centre (word2vec)
DATA_KINDS = ("image", "points", "sequence", "tokens", "series", "text", "transduction", "windows")
TOKEN_KINDS = ("tokens", "text", "transduction", "windows")  # inputs are long ids


@dataclass(frozen=True)
class DataInfo:
    name: str
    kind: str
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    num_classes: int
    class_names: tuple[str, ...] = field(default=())
    vocab_size: int = 0  # token kinds only
    description: str = ""
    target_shape: tuple[int, ...] = ()  # one label's shape when it is more than a class id


# A stand-in DataInfo per kind, for building or summarising a model without loading data.
EXAMPLE_INFO = {
    "image": DataInfo("mnist", "image", (1, 28, 28), 10, tuple(str(i) for i in range(10))),
    "points": DataInfo("moons", "points", (2,), 2, ("0", "1")),
    "sequence": DataInfo("mnist1d", "sequence", (40, 1), 10, tuple(str(i) for i in range(10))),
    "tokens": DataInfo(
        "digits_tokens", "tokens", (64,), 10, tuple(str(i) for i in range(10)), vocab_size=17
    ),
}
