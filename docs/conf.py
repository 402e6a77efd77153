"""Sphinx configuration of the xdyn documentation.

Build everything (the gallery examples are executed)::

    python -m sphinx -b html docs docs/_build/html

Fast build that does not run the examples (``-D plot_gallery=0``, or set
``XDYN_DOCS_PLOT_GALLERY=0`` in the environment)::

    python -m sphinx -b html -D plot_gallery=0 docs docs/_build/html
"""

import os
import sys
from pathlib import Path

# The documented package is the installed one; fall back to the source tree.
sys.path.append(str(Path(__file__).resolve().parents[1]))
import xdyn  # noqa: E402

project = "xdyn"
author = "the xdyn developers"
copyright = "the xdyn developers"  # noqa: A001 - Sphinx's name
release = xdyn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
root_doc = "index"

# --- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = True
# Document exactly what each module lists in ``__all__`` (re-exported names
# included), so a class added to a family's ``__init__`` appears by itself.
autosummary_ignore_module_all = False
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    """Hide scikit-learn's metadata-routing methods from the estimator pages.

    ``set_fit_request`` & co. are generated on every subclass (so
    ``:inherited-members: BaseEstimator`` does not catch them) and their
    docstrings point to sklearn's own documentation.
    """
    if name in ("get_metadata_routing", "set_output") or (
            name.startswith("set_") and name.endswith("_request")):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)


# --- intersphinx: no network fetch at build time ---------------------------------
intersphinx_mapping = {}
intersphinx_disabled_reftypes = ["*"]

# --- sphinx-gallery -------------------------------------------------------------
# Overridden on the command line by ``-D plot_gallery=0`` (fast build, examples
# not executed) or from the environment.
plot_gallery = os.environ.get("XDYN_DOCS_PLOT_GALLERY", "True")

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    # the output of an example depends on what this build of xdyn provides (the
    # filters it finds, say), so run every example on every build
    "run_stale_examples": True,
    "capture_repr": ("_repr_html_", "__repr__"),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 1,
}

# --- HTML -----------------------------------------------------------------------
html_theme = "alabaster"
html_theme_options = {
    "description": "xarray-native chaotic geophysical dynamics with scikit-learn conventions",
    "fixed_sidebar": False,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_static_path = []
html_title = f"xdyn {release}"
