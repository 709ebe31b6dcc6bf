"""(being written) the resnet family."""
