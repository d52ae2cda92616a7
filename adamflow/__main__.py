import sys

from adamflow.cli import main

sys.exit(main())
