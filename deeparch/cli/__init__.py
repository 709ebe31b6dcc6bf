"""`python -m deeparch`: the command line."""
