"""What the command line shows and writes: JSON and Rich renderings, files, pictures. Called by cli.py only."""
