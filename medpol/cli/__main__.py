"""`python -m medpol.cli`: the `medpol` command line."""

from medpol.cli.main import main

if __name__ == "__main__":
    main()
