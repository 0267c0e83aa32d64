"""``python -m rsnn_deploy.cli`` runs the command line (as ``python -m rsnn_deploy`` does)."""

import sys

from rsnn_deploy.cli import main

sys.exit(main())
