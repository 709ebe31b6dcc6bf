"""Forecasts, generated text and decoded strings: what the sequence-task pages compute on a
model copy (a student's own prompt, temperature or digit string)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deeparch.data.language import CHAR_INDEX, decode_characters, encode_characters
from deeparch.errors import ConfigError
from deeparch.tasks import evaluation_mode

MAX_PROMPT = 64
MAX_GENERATED = 400
MAX_TEMPERATURE = 2.0


def check_prompt(text: str) -> str:
    """A prompt of 1 to 64 characters of the model's alphabet (printable ASCII, newlines)."""
    prompt = str(text)
    allowed = f"1 to {MAX_PROMPT} characters: printable ASCII letters, digits, punctuation"
    if not prompt or len(prompt) > MAX_PROMPT:
        raise ConfigError("prompt", text, allowed, f"it has {len(prompt)} characters")
    for char in prompt:
        if char not in CHAR_INDEX:
            raise ConfigError("prompt", text, allowed, f"{char!r} is not in the alphabet")
    return prompt


def generate_text(model: nn.Module, prompt: str, length: int, temperature: float, seed: int) -> str:
    """The model's continuation of a prompt, sampled at a temperature from a seed of its own."""
    if not 1 <= length <= MAX_GENERATED:
        raise ConfigError("length", length, f"1 to {MAX_GENERATED} characters")
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ConfigError("temperature", temperature, f"0 to {MAX_TEMPERATURE:g}")
    device = next(model.parameters()).device
    ids = torch.from_numpy(encode_characters(check_prompt(prompt)))[None].to(device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    with evaluation_mode(model):
        generated = model.generate(ids, length, temperature, generator)
    return decode_characters(generated[0].cpu().numpy())


def decode_symbols(ids: np.ndarray, symbols: tuple[str, ...]) -> str:
    return "".join(symbols[int(i)] for i in np.asarray(ids).reshape(-1))


def check_digit_string(text: str, length: int) -> np.ndarray:
    """A typed string of exactly `length` digits as ids (length,)."""
    digits = str(text).strip()
    if len(digits) != length or not digits.isascii() or not digits.isdigit():
        raise ConfigError("digits", text, f"exactly {length} digits 0-9")
    return np.array([int(d) for d in digits], dtype=np.int64)


def transduce(model: nn.Module, ids: np.ndarray) -> np.ndarray:
    """The model's greedily decoded output ids for one input (T,)."""
    device = next(model.parameters()).device
    with evaluation_mode(model):
        logits = model(torch.from_numpy(ids)[None].to(device))
    return logits[0].argmax(dim=1).cpu().numpy()


def example_rows(snap: dict, symbols: tuple[str, ...]) -> list[dict]:
    """The snapshot's examples as table rows: input, target, output, and where they differ."""
    rows = []
    for x, y, out in zip(snap["inputs"], snap["targets"], snap["outputs"], strict=True):
        marks = "".join("." if a == b else "^" for a, b in zip(y, out, strict=True))
        rows.append({"input": decode_symbols(x, symbols), "target": decode_symbols(y, symbols),
                     "output": decode_symbols(out, symbols), "wrong": marks})  # fmt: skip
    return rows
