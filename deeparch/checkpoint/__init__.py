"""Checkpoints: safetensors weights and a JSON description, written atomically, read with checks."""
