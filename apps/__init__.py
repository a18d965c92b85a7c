"""Dash dashboard of dcgan-viz: ``create_app`` in ``apps.app``, one module per page in ``apps/pages``."""
