"""``python -m jaxdiff_cli``."""

from jaxdiff_cli.cli import main

if __name__ == "__main__":
    main()
