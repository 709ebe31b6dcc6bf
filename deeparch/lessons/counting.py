"""Lesson: counting a convnet's parameters layer by layer, and any layer's count by its formula."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from deeparch.engine.handle import JobHandle
from deeparch.errors import ConfigError
from deeparch.introspection.formulas import own_parameter_count, parameter_formula
from deeparch.introspection.table import summarize
from deeparch.lessons.registry import Lesson, Outcome, Prediction, register
from deeparch.models import create_model

# The Keras-style convnet's published counts (Chollet, Deep Learning with Python, 2017, listing
# 5.1-5.3): conv 3x3 32, conv 3x3 64, conv 3x3 64, dense 64, dense 10 on 28x28x1.
PUBLISHED_COUNTS = {
    "features.conv1": 320,
    "features.conv2": 18_496,
    "features.conv3": 36_928,
    "classifier.fc1": 36_928,
    "classifier.output": 650,
}

# The layers a student may count with numbers of their own: each field with its bounds.
FORMULA_LAYERS: dict[str, dict[str, tuple[int, int]]] = {
    "Conv2d": {"in_channels": (1, 4096), "out_channels": (1, 4096), "kernel_size": (1, 15)},
    "Linear": {"in_features": (1, 1_000_000), "out_features": (1, 1_000_000)},
    "LSTM": {"input_size": (1, 4096), "hidden_size": (1, 4096)},
    "Embedding": {"num_embeddings": (1, 1_000_000), "embedding_dim": (1, 4096)},
}
MAX_FORMULA_PARAMETERS = 50_000_000  # a layer built only to be counted; beyond this, refused


def layer_formula(kind: str, numbers: Mapping[str, int], bias: bool = True) -> tuple[str, int]:
    """A real layer built with the student's numbers: its formula and its count (checked
    against sum(p.numel()), so the formula is never the only witness)."""
    if kind not in FORMULA_LAYERS:
        raise ConfigError("layer", kind, "one of " + ", ".join(FORMULA_LAYERS))
    values = {}
    for name, (low, high) in FORMULA_LAYERS[kind].items():
        value = numbers.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(name, value, f"an integer from {low:,} to {high:,}")
        values[name] = value
    estimate = _estimate(kind, values)
    if estimate > MAX_FORMULA_PARAMETERS:
        raise ConfigError(
            "layer", f"{kind}({values})", f"at most {MAX_FORMULA_PARAMETERS:,} parameters",
            f"this layer would hold about {estimate:,}; try smaller numbers",
        )  # fmt: skip
    layer: nn.Module
    if kind == "Conv2d":
        layer = nn.Conv2d(**values, bias=bias)
    elif kind == "Linear":
        layer = nn.Linear(**values, bias=bias)
    elif kind == "LSTM":
        layer = nn.LSTM(**values, bias=bias)
    else:
        layer = nn.Embedding(**values)
    count = own_parameter_count(layer)
    assert count == sum(p.numel() for p in layer.parameters())
    return parameter_formula(layer), count


def _estimate(kind: str, v: Mapping[str, int]) -> int:
    if kind == "Conv2d":
        return v["out_channels"] * (v["in_channels"] * v["kernel_size"] ** 2 + 1)
    if kind == "Linear":
        return (v["in_features"] + 1) * v["out_features"]
    if kind == "LSTM":
        return 4 * v["hidden_size"] * (v["input_size"] + v["hidden_size"] + 2)
    return v["num_embeddings"] * v["embedding_dim"]


def judge_counting(budget: str, jobs: Mapping[str, JobHandle]) -> Outcome:
    table = summarize("cnn")
    counts = {row.name: row.params for row in table.rows if row.params}
    model, _ = create_model("cnn")
    total = sum(p.numel() for p in model.parameters())
    held = counts == PUBLISHED_COUNTS and total == table.total_params == 93_322
    formulas = {row.name: row.formula for row in table.rows if row.params}
    listed = " + ".join(f"{count:,}" for count in counts.values())
    return Outcome(
        "counting_parameters",
        held=held,
        verdict=f"{listed} = {total:,} parameters, as published"
        if held
        else f"the table gives {counts}, total {total:,}; the published counts are "
        f"{PUBLISHED_COUNTS}",
        measured={"layers": counts, "formulas": formulas, "total": total},
        answer=total,
    )


register(
    Lesson(
        name="counting_parameters",
        title="Counting a convnet's parameters",
        claim="A convolution has out x (in x k x k) + out parameters and a dense layer in x out + "
        "out, whatever the size of the image: the Keras-style convnet for MNIST has 320 + 18,496 "
        "+ 36,928 + 36,928 + 650 = 93,322.",
        source="F. Chollet, Deep Learning with Python (Manning 2017), sec. 5.1, listings 5.1-5.3",
        prediction=Prediction(
            "number", "How many parameters does the convnet have in all?", answer=93_322
        ),
        judge=judge_counting,
        setup={"arch": "cnn", "dataset": "mnist"},
        exact=True,
        position=1,
    )
)
