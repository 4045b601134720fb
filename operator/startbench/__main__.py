import sys

from startbench.cli.main import main

sys.exit(main())
