"""`python -m search.recommend`, the documented command; the code is search.serving.recommend."""
import sys

from search.serving.recommend import main

if __name__ == "__main__":
    sys.exit(main())
