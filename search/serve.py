"""`python -m search.serve`, the documented command; the code is search.serving.serve."""
import sys

from search.serving.serve import main

if __name__ == "__main__":
    sys.exit(main())
