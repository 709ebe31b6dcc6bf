"""N simulated browser tabs against a deeparch server (the package is scripts/loadtest/).

python scripts/loadtest.py --students 30 --url http://127.0.0.1:8501 --scenario ramp
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root
from scripts.loadtest.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
