"""``make book``: the executed notebooks as a static HTML site (Sphinx + MyST-NB), built offline.

``build(profile)`` stages ``book/`` (configuration, landing page, teachers' page) and the executed
notebooks of ``build/notebooks/<profile>`` (written by ``make figures``) in a scratch folder,
copies MathJax 3 (``es5``, from the PyPI package ``django-static-mathjax``) into its ``_static/mathjax``,
and runs Sphinx's HTML builder into ``build/book/<profile>/html``. Nothing is fetched from the
network, at build or at view time (``tests/test_book.py`` opens every page in headless Chromium
with the network blocked).

    python -m locdiff.book --profile cpu      # what `make book` runs
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .plots import repo_root

NOTEBOOKS = ("00_data", "01_shdd", "02_train", "03_sampling", "04_baselines", "05_generalization",
             "06_ablations", "07_explore")


def mathjax_dir() -> Path:
    """MathJax 3's browser bundles as shipped by the PyPI package ``django-static-mathjax`` (module
    ``mathjax``; only its ``es5`` folder is used: ``tex-svg.js`` draws glyphs as SVG, no web fonts)."""
    import mathjax

    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (path / "tex-svg.js").exists():
        raise FileNotFoundError(f"tex-svg.js not found in {path}: reinstall django-static-mathjax")
    return path


def stage(executed: Path, src: Path) -> Path:
    """Copy the book's pages and the executed notebooks into ``src`` (replaced). Returns ``src``."""
    missing = [n for n in NOTEBOOKS if not (executed / f"{n}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"executed notebooks missing in {executed}: {', '.join(missing)}; run "
                                f"`make figures PROFILE=<profile>` first")
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(repo_root() / "book", src)
    (src / "notebooks").mkdir()
    for n in NOTEBOOKS:
        shutil.copy2(executed / f"{n}.ipynb", src / "notebooks" / f"{n}.ipynb")
    shutil.copytree(mathjax_dir(), src / "_static" / "mathjax")
    return src


def build(profile: str = "cpu", executed: Path | None = None, out: Path | None = None, quiet: bool = True) -> Path:
    """Build the site; returns the folder holding ``index.html``."""
    from sphinx.cmd.build import build_main

    root = repo_root()
    executed = Path(executed) if executed is not None else root / "build" / "notebooks" / profile
    out = Path(out) if out is not None else root / "build" / "book" / profile
    src = stage(executed, out / "src")
    html = out / "html"
    args = ["-b", "html", "-j", "1", str(src), str(html)] + (["-q"] if quiet else [])
    if build_main(args) != 0:
        raise RuntimeError(f"sphinx-build failed for {src}")
    return html


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build the static HTML book of the executed notebooks.")
    ap.add_argument("--profile", default="cpu", help="whose executed notebooks (build/notebooks/<profile>)")
    ap.add_argument("--out", default=None, help="output folder (default build/book/<profile>)")
    args = ap.parse_args(argv)
    html = build(args.profile, out=args.out, quiet=False)
    print(f"book: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
