"""(being written) the cnn family."""
