"""(being written) the gan family."""
