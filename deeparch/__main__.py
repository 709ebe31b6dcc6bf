"""`python -m deeparch`: the command line (see deeparch.cli)."""

from deeparch.cli import main

raise SystemExit(main())
