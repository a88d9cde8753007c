"""Sphinx configuration of the locdiff book (``make book``): the executed notebooks as static HTML.

Built offline from package installs only: Sphinx's bundled Alabaster theme, MyST-NB to read the
notebooks without executing them, and MathJax 3 served from the copy the PyPI package
``django-static-mathjax`` ships (its ``es5/tex-svg.js``; ``locdiff.book`` copies it to ``_static/mathjax``). No theme,
font or script is fetched at build or view time.
"""
project = "locdiff: a reading-group edition of LocDiff"
author = "the locdiff authors"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"          # the notebooks were executed by `make figures`
nb_ipywidgets_js = {}              # no widget manager from a CDN (notebook 07's widgets need a live kernel)
nb_merge_streams = True
html_theme = "alabaster"
html_theme_options = {"font_family": "serif", "head_font_family": "sans-serif", "code_font_family": "monospace",
                      "description": "Image geolocalization by diffusion in spherical-harmonic space",
                      "github_button": False, "show_powered_by": False}
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-svg.js"         # MathJax 3, SVG output: no web fonts to load
html_use_index = False
html_copy_source = False
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
