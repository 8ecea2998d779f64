"""`python -m labenv.controller`: run the operator in this process (what the container runs)."""

from labenv.controller.run import main

main()
