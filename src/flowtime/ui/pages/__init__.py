"""The UI's pages, one router module per resource (home, templates, runs, compare)."""
