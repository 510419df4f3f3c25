import sys

from cellkit.cli import main

sys.exit(main())
