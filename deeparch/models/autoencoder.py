"""(being written) the autoencoder family."""
