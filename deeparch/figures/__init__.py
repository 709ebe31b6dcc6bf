"""Plotly figures and SVG drawings: pure functions from arrays and tables to pictures."""
