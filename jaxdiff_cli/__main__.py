"""``python -m jaxdiff_cli``.

Python puts the current folder first on sys.path for ``-m``, so a pull request's ``typer.py`` or
``yaml.py`` in it would be imported in place of the real one. It is taken off before anything else is
imported. (A ``jaxdiff_cli`` folder there would still be run instead of this one: CI runs the
``jaxdiff`` script, or ``python -P -m jaxdiff_cli``; see README, In CI.)
"""

import os
import sys

if not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from jaxdiff_cli.cli import main  # after the current folder is off sys.path

if __name__ == "__main__":
    main()
