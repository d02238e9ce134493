"""The book's own Sphinx extension (loaded from `_config.yml`): maths without a CDN, and the
repository, issue, download and launch buttons switched on by one setting, `repository.url`.

* Maths: MathJax 2.7 from the `jupyter-server-mathjax` package (a requirement of the book) is
  copied into the pages' `_static/`, so formulas render offline. That copy holds one combined
  configuration, `TeX-AMS-MML_HTMLorMML-full`, and one web font, STIX-Web (no TeX fonts), so the
  pages load that configuration and `MATHJAX2_CONFIG` names the font. MathJax 2 reads a
  `MathJax.Hub.Config` block (Sphinx's `mathjax2_config`), not the MathJax 3 `window.MathJax`
  object that MyST writes by default (`myst_update_mathjax`, switched off here): the block gives
  MathJax 2 the same rule, typeset only the formulas Sphinx marks (class `math`, inside MyST's
  `tex2jax_ignore` sections), never a `$` of the prose or of a code cell.
* Scripts: each inline script is written once per page (see `_drop_repeated_scripts`).
* Page styles, `static/book.css`: the size of code and output (80 characters fit at 1280 px), the
  formulas of MathJax 2 on the baseline.
* Buttons: with `repository.url` empty (the default: the book builds and reads offline) the
  repository, issue and download buttons and the launch buttons are off; set the URL and they
  switch on, pointing at it (Colab and Binder, and a JupyterHub if `launch_buttons` names one).
"""
from pathlib import Path

# MathJax 2.7 settings (written by Sphinx into each page with formulas as MathJax.Hub.Config).
MATHJAX2_CONFIG = {
    "tex2jax": {
        # Sphinx writes inline maths as \(...\) in <span class="math"> and display maths as
        # \[...\] in <div class="math">; MyST marks every page section "tex2jax_ignore
        # mathjax_ignore", so only the elements of these classes (and their contents) are read.
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": False,
        "processEnvironments": False,
        "processClass": "tex2jax_process|mathjax_process|math|output_area",
        "ignoreClass": "tex2jax_ignore|mathjax_ignore",
    },
    # The package ships STIX-Web only: no local fonts looked for, no image fonts.
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web",
                 "imageFont": None},
    "SVG": {"font": "STIX-Web"},
    # No menu entry that would switch to an output the package lacks (CommonHTML).
    "MathMenu": {"showRenderer": False},
}


def _configure(app, config):
    import jupyter_server_mathjax

    config.html_static_path.append(str(Path(jupyter_server_mathjax.__file__).parent / "static"))
    config.html_static_path.append(str(Path(__file__).parent / "static"))     # book.css
    config.mathjax_path = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    config.mathjax2_config = MATHJAX2_CONFIG
    config.mathjax3_config = None
    config.myst_update_mathjax = False      # MyST's MathJax 3 block; the rule is in tex2jax above
    options = config.html_theme_options
    on = bool(options.get("repository_url"))
    for key in ("use_repository_button", "use_issues_button", "use_download_button"):
        options[key] = on
    launch = dict(options.get("launch_buttons") or {})
    if on:
        launch["colab_url"] = launch.get("colab_url") or "https://colab.research.google.com"
        launch["binderhub_url"] = launch.get("binderhub_url") or "https://mybinder.org"
    options["launch_buttons"] = launch if on else {}


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    """Writes each script of the page once. Sphinx lists an inline script added after the builder
    started (sphinx-thebe's `const THEBE_JS_URL = ...`, sphinx-togglebutton's selector) twice, as
    file `None` and as file `''`; the second `const` throws a SyntaxError in every page."""
    files = context.get("script_files")
    if not isinstance(files, list):
        return
    seen, kept = set(), []
    for js in files:
        key = (str(getattr(js, "filename", js) or ""), repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    files[:] = kept


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)   # after MathJax's
    app.connect("config-inited", _configure, priority=100)     # before the theme reads them
    app.add_css_file("book.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
