"""`python -m robustcollapse …` (what torchrun and subprocess-based tests launch) is the `robustcollapse` command."""

from robustcollapse.cli import main

main(prog_name="robustcollapse")
