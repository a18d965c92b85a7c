"""CLI verbs of the analyses: one module each, exposing ``register(app: typer.Typer)``.

Keep them thin: parse options, call the analysis function, render with the plot function.
Use ``dcgan_viz.cli._run`` to turn user errors into one-line messages with exit code 2.
"""
