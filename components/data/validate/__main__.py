"""`python -m components.data.validate`: see cli.py (kept apart so importing the package never imports
this file, which runpy then runs as __main__)."""
import sys

from components.data.validate.cli import main

sys.exit(main())
