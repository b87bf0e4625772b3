import sys

from robustjax.eval.cli import main

sys.exit(main())
