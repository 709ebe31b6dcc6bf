"""Looking inside a model: parameter tables, count formulas, convolution arithmetic."""
