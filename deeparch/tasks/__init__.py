"""Training tasks by name: what one step, an evaluation and a snapshot mean per kind of model."""
