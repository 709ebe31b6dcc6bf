"""(being written) the rnn family."""
