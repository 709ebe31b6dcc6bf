"""`python -m deeparch`: the command line (see deeparch.cli.main)."""

from deeparch.cli.main import main

raise SystemExit(main())
