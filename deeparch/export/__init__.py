"""A run exported as code that needs no deeparch: a standalone PyTorch script and a notebook."""
