"""Plots: analysis Result -> plotly figure or image grid. Nothing here computes an analysis."""
