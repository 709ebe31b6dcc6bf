"""What the product says cites real sources, never internal course documents a student never saw."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = sorted(
    [ROOT / "app.py", ROOT / "README.md", *(ROOT / "deeparch").rglob("*.py")]
    + list((ROOT / "pages").rglob("*.py"))
)
# "seed 003", "seed 002's", "Seed 004", "(seed)", "(seed: 3x3)", "the seed's convnet", "the seeds'
# loop", "seed CNN", "the UPC slides". A random seed ("model from the seed", "two seeds' noise
# vectors", config.seed) is another word and stays.
CITATION = re.compile(
    r"\bseeds? ?0\d\d\b"
    r"|(?<!\w)\(seed[:)]"  # prose "(seed)", not a call such as manual_seed(seed)
    r"|\bthe seed's\b|\bthe seeds'"
    r"|\bseed (?:mlp|cnn|convnet|models?|figures|notebooks?)\b"
    r"|\bUPC slides\b",
    flags=re.IGNORECASE,
)


def citations(text: str) -> list[str]:
    return [match.group(0) for match in CITATION.finditer(text)]


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_internal_course_documents(path):
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if citations(line)
    ]
    assert not found, "cite a paper, book or example instead:\n" + "\n".join(found)


def test_the_pattern_catches_citations_and_leaves_random_seeds_alone():
    caught = [
        "watch the digits morph (seed 004).",
        "Filters in each conv block (seed 003's Keras convnet: 32, 64, 64)",
        "Seed 002 says a QRNN trains far faster",
        "Height and width of every conv filter (seed: 3x3)",
        "0 is Keras 'valid' (seed); kernel_size // 2",
        "Convolutional classifiers: the seed's Keras-style convnet",
        "the seeds' loop (a Dataset with a per-sample transform)",
        "Seed MLP and seed CNN on the bundled MNIST",
        "a linear code, as in the UPC slides",
    ]
    assert all(citations(text) for text in caught)
    kept = [
        "data, model from the seed, task, optimizers",
        "Generator images along the line between two seeds' noise vectors",
        "seed of the shuffled, stratified train/validation split",
        "torch.manual_seed(seed); config.seed = 3; --seed 3; def load_mnist(seed: int)",
        "val MSE 0.114 for both seeds tried",
    ]
    assert not any(citations(text) for text in kept)
