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
* References: the text cites author-year (`bibtex_reference_style: author_year`), so the list on
  the references page is labelled the same way, "Wijkhuizen, 2023" rather than pybtex's "Wij23":
  the bibliography style `book_author_year` (`bibtex_default_style` in `_config.yml`) is pybtex's
  `alpha` (sorted by author, year, title) with labels written by the citations' own template.
* Scripts: each inline script is written once per page (see `_drop_repeated_scripts`).
* Page styles, `static/book.css`: the size of code and output (80 characters fit at 1280 px), the
  formulas of MathJax 2 on the baseline, commands in tables wrapped, the references' labels.
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


def _register_bibliography_style():
    """Registers the pybtex style `book_author_year`: the list sorted as `alpha` sorts it, each
    entry labelled as the author-year citations in the text name it ("Vaswani et al., 2017")."""
    import pybtex.plugin
    from pybtex.style.formatting.alpha import Style as AlphaStyle
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting.author_year_title import SortingStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
    from sphinxcontrib.bibtex.style.template import join, year

    class AuthorYearLabelStyle(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            # the template of a parenthetical citation, :cite:p:, without its link and brackets
            style = AuthorYearReferenceStyle()
            template = join(sep=style.author_year_sep)[style.person.author_or_editor_or_title(full=False), year]
            labels = [template.format_data({"entry": e, "style": style}).render_as("text")
                      for e in sorted_entries]
            # two works of the same authors and year: "…, 2023a", "…, 2023b"
            for i, label in enumerate(labels):
                same = [j for j, other in enumerate(labels) if other == label]
                yield label + ("abcdefghijklmnopqrstuvwxyz"[same.index(i)] if len(same) > 1 else "")

    class AuthorYearSorting(SortingStyle):
        # a name in braces, "{GISLR project team}", sorts under G, not after Z
        def person_key(self, person):
            return super().person_key(person).replace("{", "").replace("}", "")

    class AuthorYearStyle(AlphaStyle):
        default_label_style = AuthorYearLabelStyle
        default_sorting_style = AuthorYearSorting

    if "book_author_year" not in pybtex.plugin.enumerate_plugin_names("pybtex.style.formatting"):
        pybtex.plugin.register_plugin("pybtex.style.formatting", "book_author_year", AuthorYearStyle)


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
    _register_bibliography_style()
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)   # after MathJax's
    app.connect("config-inited", _configure, priority=100)     # before the theme reads them
    app.add_css_file("book.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
