"""(being written) the qrnn family."""
