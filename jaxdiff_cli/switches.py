"""On/off settings (environment variables, pytest ini options): one parser, one set of spellings.

``JAXDIFF_NO_CODE`` is a security switch: a spelling that one reader took as on and another as off
(``y`` turned it on for the CLI and off for the pytest plugin) ran a pull request's code where the
job meant to refuse it. So every on/off setting is read here, and a value that is none of the
spellings below is an error (exit 3), never "off". Empty or unset is the setting's default, as the
shell's ``VAR= command`` means.

No third-party imports: the CLI and the pytest plugin read these before anything heavy.
"""

from __future__ import annotations

import os

from jaxdiff_cli.errors import SpecError

ON = ("1", "true", "yes", "on", "y", "t")
OFF = ("0", "false", "no", "off", "n", "f")
SPELLINGS = f"on: {', '.join(ON)}; off: {', '.join(OFF)}; any case"

NO_CODE = "JAXDIFF_NO_CODE"  # refuse module and file functions (--no-code)


class SwitchError(SpecError):
    """A setting that is neither on nor off (exit 3): names the setting and the spellings."""


def switch(value: str | bool | None, name: str, default: bool = False) -> bool:
    """``value`` of the setting ``name`` as on (True) or off (False); None or blank is ``default``.

    A bool passes as it is (a TOML ``true``); a string is one of ON or OFF in any case, with
    surrounding blanks ignored; anything else raises SwitchError.
    """
    if isinstance(value, bool):
        return value
    if value is not None and not isinstance(value, str):  # an ini list or table ([true], {a = 1})
        raise SwitchError(f"{value!r} is neither on nor off", where=name, hint=SPELLINGS)
    if value is None or not value.strip():
        return default
    word = value.strip().lower()
    if word in ON:
        return True
    if word in OFF:
        return False
    shown = value if len(value) <= 40 else value[:40] + "..."
    hint = f"{SPELLINGS}; empty or unset: {'on' if default else 'off'}"
    raise SwitchError(f"{shown!r} is neither on nor off", where=name, hint=hint)


def env_switch(name: str, default: bool = False) -> bool:
    """The environment variable ``name`` as on or off (see ``switch``)."""
    return switch(os.environ.get(name), name, default)


def no_code(flag: bool = False) -> bool:
    """Whether module and file functions are refused: ``--no-code``, or JAXDIFF_NO_CODE on.

    Either one turns it on; the variable is read (and a bad value refused) even when the flag is given.
    """
    from_env = env_switch(NO_CODE)
    return flag or from_env
