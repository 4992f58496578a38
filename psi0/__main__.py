from psi0.cli import main

raise SystemExit(main())
