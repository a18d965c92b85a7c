"""Dashboard pages: one module per analysis, registered with dash.register_page."""
