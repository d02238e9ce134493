"""The book's own Sphinx extension (loaded from `_config.yml`): maths without a CDN, and the
repository, issue, download and launch buttons switched on by one setting, `repository.url`.

* Maths: MathJax 2.7 from the `jupyter-server-mathjax` package (a requirement of the book) is
  copied into the pages' `_static/`, so formulas render offline.
* Buttons: with `repository.url` empty (the default: the book builds and reads offline) the
  repository, issue and download buttons and the launch buttons (Colab, JupyterHub, Binder) are
  off; set the URL and they all switch on, pointing at it.
"""
from pathlib import Path


def _configure(app, config):
    import jupyter_server_mathjax

    config.html_static_path.append(str(Path(jupyter_server_mathjax.__file__).parent / "static"))
    config.mathjax_path = "MathJax.js?config=TeX-AMS-MML_HTMLorMML"
    options = config.html_theme_options
    options["use_download_button"] = bool(options.get("repository_url"))
    if not options.get("repository_url"):
        for key in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
            options[key] = False
        options["launch_buttons"] = {}


def setup(app):
    app.connect("config-inited", _configure)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
