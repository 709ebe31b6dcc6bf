"""Exploration views: feature maps, latent spaces, GAN samples, sequence models, autoencoders."""
