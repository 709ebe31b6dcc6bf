"""What a page waits for on a fresh server: the imports before its first element, the work done
once per server instead of once per session, and the Start button's first loss point."""

import json
import subprocess
import sys

from tests.app.browser import REPO

# What app.py and Home import before Home's first card is sent (pages/home.py's own imports).
APP_IMPORTS = (
    "pages._shared",
    "deeparch.models",
    "deeparch.figures.diagrams",
    "deeparch.figures.layer_drawing",
    "deeparch.introspection.table",
    "deeparch.figures.training",
)


def test_the_pages_import_neither_torchvision_nor_torch_dynamo():
    # torchvision's import imports torch._dynamo, and the two took as long as torch itself
    # (python -X importtime): no page should wait for them before its first element.
    code = "import sys\n" + "".join(f"import {name}\n" for name in APP_IMPORTS)
    code += "print(__import__('json').dumps(sorted(m for m in sys.modules "
    code += "if m.split('.')[0] == 'torchvision' or m.startswith('torch._dynamo'))))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
