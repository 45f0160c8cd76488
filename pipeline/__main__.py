"""`python -m pipeline ...`: see pipeline.cli."""

from pipeline.cli import exit_now, main

if __name__ == "__main__":
    exit_now(main())
