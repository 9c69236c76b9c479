from tfs.cli import main

raise SystemExit(main())
