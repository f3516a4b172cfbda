"""``python -m citybrain``: the same command line as the ``citybrain`` console script, for a
shell where the virtualenv's ``bin`` is not on ``PATH`` (a newcomer's first guess; t147 found
it answered "No module named citybrain.__main__")."""

from citybrain.launch import main

raise SystemExit(main())
