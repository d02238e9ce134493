"""The book's own Sphinx extension (loaded from `_config.yml`): maths without a CDN, and the
repository, issue, download and launch buttons switched on by one setting, `repository.url`.

* Maths: MathJax 2.7 from the `jupyter-server-mathjax` package (a requirement of the book) is
  copied into the pages' `_static/`, so formulas render offline.
* Code boxes: `static/book.css` sets the size of code and output so that 80 characters fit at
  1280 px.
* Buttons: with `repository.url` empty (the default: the book builds and reads offline) the
  repository, issue and download buttons and the launch buttons are off; set the URL and they
  switch on, pointing at it (Colab and Binder, and a JupyterHub if `launch_buttons` names one).
"""
from pathlib import Path


def _configure(app, config):
    import jupyter_server_mathjax

    config.html_static_path.append(str(Path(jupyter_server_mathjax.__file__).parent / "static"))
    config.html_static_path.append(str(Path(__file__).parent / "static"))     # book.css
    config.mathjax_path = "MathJax.js?config=TeX-AMS-MML_HTMLorMML"
    options = config.html_theme_options
    on = bool(options.get("repository_url"))
    for key in ("use_repository_button", "use_issues_button", "use_download_button"):
        options[key] = on
    launch = dict(options.get("launch_buttons") or {})
    if on:
        launch["colab_url"] = launch.get("colab_url") or "https://colab.research.google.com"
        launch["binderhub_url"] = launch.get("binderhub_url") or "https://mybinder.org"
    options["launch_buttons"] = launch if on else {}


def setup(app):
    app.connect("config-inited", _configure, priority=100)     # before the theme reads them
    app.add_css_file("book.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
