import sys

from startbench.cli import main

sys.exit(main())
