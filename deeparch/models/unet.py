"""(being written) the unet family."""
