"""Text from specs and file names, made safe for every place jaxdiff writes it: terminals, CI logs,
GitHub workflow commands, JUnit XML (and any job summary).

Names, paths and messages come from pull requests. A folder named ``a\\n::error::x`` would start a
line of its own in a CI log (GitHub obeys ``::`` workflow commands on any line of a job's output),
an escape sequence (``\\x1b]8;;...``) would drive the terminal, a Unicode bidi override would make
the shown text differ from the real one, and a NUL would make a JUnit file unreadable. So every
writer passes such text through ``printable`` first: each character that is not printable is
written as Python escapes it (``\\n``, ``\\x1b``, ``\\u202e``), shown, not obeyed.

No third-party imports: the CLI's error path and the pytest plugin use it before anything heavy.
"""

from __future__ import annotations


def _escaped(ch: str) -> str:
    return ch if ch.isprintable() else repr(ch)[1:-1]


def printable(text: object) -> str:
    """``text`` as one line of printable characters (Python's ``str.isprintable``): every other
    character (C0 and C1 controls, DEL, line and paragraph separators, bidi and other format
    characters, lone surrogates of undecodable file names) escaped as ``repr`` writes it."""
    s = str(text)
    return s if s.isprintable() else "".join(_escaped(ch) for ch in s)


def printable_lines(text: str) -> str:
    """Text of several lines written by jaxdiff itself: its line breaks kept, every line printable."""
    return "\n".join(printable(line) for line in text.split("\n"))


def workflow_data(text: object) -> str:
    """The message of a GitHub workflow command (``::error ...::MESSAGE``), escaped as
    @actions/core escapes it (``%`` first, then CR and LF), after ``printable``."""
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: object) -> str:
    """A property value of a GitHub workflow command (``file=…,title=…``): as ``workflow_data``, and
    ``:`` and ``,``, which would end the value, escaped too (@actions/core's escapeProperty)."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


_MARKDOWN = frozenset("\\`*_{}[]<>()#+-.!|~&:;\"'=$%^?@/,")  # ASCII punctuation: CommonMark escapes each with \


def markdown(text: object) -> str:
    """Text for a Markdown document (GitHub's job summary), as one table cell: ``printable``, then each
    ASCII punctuation character backslash-escaped (CommonMark lets any be), so a name renders as it
    is: no emphasis, link, image, HTML tag or entity, and no ``|`` that would end the cell."""
    return "".join("\\" + ch if ch in _MARKDOWN else ch for ch in printable(text))
