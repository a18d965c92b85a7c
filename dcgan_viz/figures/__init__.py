"""Scripted paper figures and the evaluation report (``dcgan-viz figures``).

Each section function takes a ``FigureContext`` and returns a ``report.Section``: it calls the
analysis functions (with their disk caches) and renders with the plot functions the dashboard
uses, so there is no second implementation of any figure.
"""
