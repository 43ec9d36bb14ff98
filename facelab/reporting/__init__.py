"""Reporting: the computed comparison, figures, and the HTML and Markdown report."""
