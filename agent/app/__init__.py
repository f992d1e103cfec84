"""The application: commands and the daemon, on top of the pipeline."""
