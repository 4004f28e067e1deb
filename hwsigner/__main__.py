"""``python -m hwsigner``: the same as the ``hwsigner`` command."""

from .cli import run

run()
