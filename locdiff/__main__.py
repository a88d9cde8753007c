"""``python -m locdiff ...`` (and ``accelerate launch -m locdiff train ...``): the command line."""
import sys

from .cli import main

sys.exit(main())
