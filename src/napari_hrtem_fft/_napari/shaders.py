r"""Faster shader builds on napari's canvas: vispy's comment stripping, line by line.

Every time vispy (napari's canvas library) builds a shader program, e.g. for a new
layer, its colour bar (image, box, axis line, tick text) or a scale bar, it removes the
``//`` comments from the GLSL with ``re.sub(r'(.*)(//.*)', r'\1', code, flags=re.M)``
(``vispy.gloo.program.Program._parse_variables_from_code``).  On a line without a
comment that pattern is tried from every position, and each try runs ``.*`` to the end
of the line: quadratic in the line length.  It took 0.03 s for the program of one text
visual and 0.05-0.09 s of the GUI thread in a lattice-map Run on a new image (the
~10 programs of its layer and colour bar), all holding the GIL.

:func:`speed_up_comment_stripping` gives that vispy module a view of :mod:`re` in
which that one call is done line by line, with the same result character for character
(:func:`strip_comments`): the pattern keeps, on each line holding ``//``, what lies
before the LAST ``//`` (``.*`` is greedy), and ``.`` never crosses a newline.  Every
other use of :mod:`re` in that module goes to :mod:`re` unchanged.  It applies to the
whole process (every vispy program built afterwards), is done once, and is skipped if
vispy no longer has that module or its ``re`` is not the standard module.
"""

from __future__ import annotations

import re

__all__ = ["speed_up_comment_stripping", "strip_comments"]

# vispy.gloo.program's comment-stripping pattern and replacement (vispy 0.10-0.17).
_PATTERN, _REPLACEMENT = r"(.*)(//.*)", r"\1"


def strip_comments(code: str) -> str:
    r"""``code`` with each line cut at its last ``//``, as vispy's regex does it.

    Parameters
    ----------
    code : str
        GLSL source.

    Returns
    -------
    str
        ``re.sub(r'(.*)(//.*)', r'\1', code, flags=re.M)``, in time linear in the
        length of ``code``.
    """
    lines = code.split("\n")
    for k, line in enumerate(lines):
        cut = line.rfind("//")
        if cut >= 0:
            lines[k] = line[:cut]
    return "\n".join(lines)


class _LinearCommentStripping:
    """:mod:`re` as vispy's shader module sees it, its comment stripping done linearly."""

    def __getattr__(self, name: str):
        return getattr(re, name)

    def sub(self, pattern, repl, string, count=0, flags=0):
        """:func:`re.sub`; vispy's comment stripping by :func:`strip_comments`."""
        # DOTALL would let '.' cross lines; a count stops early: leave those to re.
        if pattern == _PATTERN and repl == _REPLACEMENT and not count and not flags & re.S:
            return strip_comments(string)
        return re.sub(pattern, repl, string, count=count, flags=flags)


def speed_up_comment_stripping() -> bool:
    """Have vispy strip shader comments in linear time from now on (whole process).

    Returns
    -------
    bool
        True if vispy's shader module uses :func:`strip_comments` (now or already);
        False if that module or its use of :mod:`re` is not there (other vispy).
    """
    try:
        from vispy.gloo import program
    except ImportError:
        return False
    used = getattr(program, "re", None)
    if isinstance(used, _LinearCommentStripping):
        return True
    if used is not re:
        return False
    program.re = _LinearCommentStripping()
    return True
