"""The web console: server-rendered pages under /console for people (app/console is the CLI)."""
