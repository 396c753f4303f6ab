"""Names from a pull request reach CI output only as printable text (jaxdiff_cli.safetext).

Specs in folders whose names hold ESC, BEL, CR, LF, ``::error::``, ``%``, commas and colons, checked
through the CLI: the GitHub annotations parse, as the runner parses them, into exactly the commands
meant, with every value printable; the JUnit XML parses and holds no control character; the terminal
text holds no raw escape and no line a runner would take for a command.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from jaxdiff_cli.safetext import printable, printable_lines, workflow_data, workflow_property

WRONG = "function: x * 2\nprimals: {x: 1.0}\nexpect: {value: 3.0}\n"  # value is 2: fails at line 3
BROKEN = "function: x * 2\nprimals:\n  x: [1.0, abc]\n"  # a bad value at line 3
FOLDERS = {
    "esc": "a\x1b[31mred\x1b]8;;https:x\x1b\\",
    "bel": "ring\x07\x07",
    "cr": "over\rwritten",
    "lf": "x\n::error::PWNED",
    "percent": "p%0A%25q",
    "comma-colon": "k=v,title=x:y::z",
    "bidi": "left\u202eright\u2028sep",
    "all": "a\x1b[2J\x07\r\n::error file=x::PWNED%,:",
}


def runner_commands(stdout: str) -> list[tuple[str, dict[str, str], str]]:
    """Workflow commands as GitHub's runner reads them (ActionCommand.TryParseV2): a line that starts
    with ``::``, its command and properties up to the next ``::``, the data after; values unescaped."""

    def unescape(text: str, prop: bool) -> str:
        pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else []) + [("%25", "%")]
        for code, ch in pairs:
            text = text.replace(code, ch)
        return text

    found = []
    for line in stdout.splitlines():
        if not line.startswith("::"):
            continue
        end = line.index("::", 2)
        head, data = line[2:end], line[end + 2 :]
        command, _, props = head.partition(" ")
        pairs = (p.split("=", 1) for p in props.split(",") if p)
        found.append((command, {k: unescape(v, True) for k, v in pairs}, unescape(data, False)))
    return found


def specs_in(tmp_path: Path, folder: str) -> tuple[Path, Path]:
    where = tmp_path / folder
    where.mkdir()
    (where / "wrong.yaml").write_text(WRONG)
    (where / "broken.yaml").write_text(BROKEN)
    return where / "wrong.yaml", where / "broken.yaml"


def control(text: str, allowed: str = "") -> list[str]:
    return [ch for ch in text if not ch.isprintable() and ch not in allowed]


@pytest.mark.parametrize("folder", FOLDERS.values(), ids=FOLDERS.keys())
def test_annotations_parse_as_meant(cli: Any, tmp_path: Path, folder: str) -> None:
    wrong, broken = specs_in(tmp_path, folder)
    ran = cli("check", str(wrong), str(broken), "--output-format", "github")
    assert ran.exit_code == 3, ran.stderr
    commands = runner_commands(ran.stdout)
    assert [c for c, _, _ in commands] == ["error", "error"], ran.stdout  # the two meant, no PWNED
    (_, failed, message), (_, refused, error) = commands
    assert failed == {
        "file": printable(wrong),
        "line": "3",
        "col": "10",
        "title": f"jaxdiff check: {printable(wrong)}: expect value",
    }
    assert message.startswith("expect value: 1 of 1 entry outside tolerance")
    assert refused["file"] == printable(broken) and refused["line"] == "3"
    assert error.startswith(f"{printable(broken)}: primals.x[1]: 'abc' is not a number")
    for _, props, data in commands:  # what the runner holds after unescaping: printable, one line
        assert not control(data) and not any(control(v) for v in props.values()), commands
    assert not control(ran.stdout, "\n")


@pytest.mark.parametrize("folder", FOLDERS.values(), ids=FOLDERS.keys())
def test_junit_xml_parses_without_control_characters(cli: Any, tmp_path: Path, folder: str) -> None:
    wrong, broken = specs_in(tmp_path, folder)
    report = tmp_path / "report.xml"
    ran = cli("check", str(wrong), str(broken), "--junit-xml", str(report), "-q")
    assert ran.exit_code == 3, ran.stderr
    root = ET.parse(report).getroot()
    for element in root.iter():
        for value in element.attrib.values():
            assert not control(value), (element.tag, value)
        assert not control(element.text or "", "\n"), (element.tag, element.text)
    failure, error = root.findall(".//failure")  # a spec that cannot be checked fails too, as in pytest
    assert root.find(".//error") is None
    # Each text: where (file:line), then what happened; only jaxdiff's own line breaks (none here).
    assert (failure.text or "").startswith(f"{printable(wrong)}:3: expect value: ") and failure.get("message") == failure.text
    assert "\n" not in (failure.text or "")
    text = error.text or ""
    assert text.startswith(f"{printable(broken)}:3: primals.x[1]") and text.endswith("(exit status 3 in jaxdiff check)"), text
    suites = [s.get("name") for s in root.iter("testsuite")]
    assert suites == [printable(wrong), printable(broken)]


@pytest.mark.parametrize("folder", [FOLDERS["all"], FOLDERS["esc"]], ids=["all", "esc"])
def test_terminal_text_holds_no_raw_escape(cli: Any, tmp_path: Path, folder: str) -> None:
    wrong, broken = specs_in(tmp_path, folder)
    for args in (["check", str(wrong), str(broken)], ["check", str(wrong), str(broken), "-q"], ["eval", str(broken)]):
        ran = cli(*args)
        text = ran.stdout + ran.stderr
        assert not control(text, "\n"), (args, text)
        assert not [line for line in text.splitlines() if line.lstrip().startswith("::")], (args, text)
        assert printable(broken) in text.replace("\n", ""), (args, text)
    # a picture's file, named by the spec: said on the terminal, printable too
    (wrong.parent / "plot.yaml").write_text('function: "jnp.sin(x)"\nprimals: {x: [1.0, 2.0]}\nplot: {file: j.svg}\n')
    ran = cli("jacobian", str(wrong.parent / "plot.yaml"), "--plot")
    assert ran.exit_code == 0, ran.stderr
    assert "picture saved to" in ran.stdout and not control(ran.stdout + ran.stderr, "\n"), ran.stdout


def test_the_helpers() -> None:
    assert printable("a\x1b[31m\u202e\udcff\t") == "a\\x1b[31m\\u202e\\udcff\\t"
    assert printable("µ ± ∑ ⟨u, Jv⟩ ✓") == "µ ± ∑ ⟨u, Jv⟩ ✓"  # printable text is left as it is
    assert printable_lines("one\x07\ntwo") == "one\\x07\ntwo"
    # @actions/core: data escapes %, CR, LF; properties also : and , (after printable, CR and LF are gone)
    assert workflow_data("100% a:b,c") == "100%25 a:b,c"
    assert workflow_property("100% a:b,c\n") == "100%25 a%3Ab%2Cc\\n"
