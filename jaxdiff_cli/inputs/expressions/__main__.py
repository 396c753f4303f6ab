"""python -m jaxdiff_cli.inputs.expressions: the README's list of the tables."""

from jaxdiff_cli.inputs.expressions.tables import readme_tables

print(readme_tables(), end="")
