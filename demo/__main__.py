"""`python -m demo` (what `make demo` runs): see demo/run.py."""

from demo.run import main

raise SystemExit(main())
