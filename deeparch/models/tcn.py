"""(being written) the tcn family."""
