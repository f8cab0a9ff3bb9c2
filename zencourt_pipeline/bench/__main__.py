"""`make bench` / `python -m zencourt_pipeline.bench` (see the package docstring)."""

from zencourt_pipeline.bench.runner import main

if __name__ == "__main__":
    main()
