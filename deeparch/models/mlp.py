"""(being written) the mlp family."""
