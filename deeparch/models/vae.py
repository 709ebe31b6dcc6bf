"""(being written) the vae family."""
